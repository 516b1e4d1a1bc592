"""``xdsctl``: the operator's command line, a thin client of the operator API.

Exit codes: 0 done; 1 refused by the server, nothing changed; 2 usage error,
nothing changed; 3 server unreachable; 4 committed but not yet confirmed on
every Envoy (``--wait``); 5 not authenticated or not allowed (the message
names the role needed), nothing changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import argcomplete

from xds_server import __version__
from xds_server.cli.client import EXIT_OK, OperatorClient
from xds_server.cli.commands import (
    apply,
    completion,
    config,
    deployments,
    hooks,
    metrics,
    rollout,
    services,
    state,
    status,
    tokens,
    traffic,
    version,
)
from xds_server.cli.flags import OneLineParser
from xds_server.cli.local import bootstrap, demo, serve
from xds_server.cli.options import connection_options, credentials, server
from xds_server.cli.wait import wait_for_envoys
from xds_server.errors import CliError
from xds_server.redaction import one_line

# In the order `xdsctl --help` lists them: the local commands, then the client ones.
_COMMAND_MODULES = (
    serve,
    demo,
    bootstrap,
    apply,
    traffic,
    deployments,
    status,
    metrics,
    rollout,
    services,
    state,
    tokens,
    hooks,
    version,
    config,
    completion,
)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: each command module adds its own subcommands."""
    parser = OneLineParser(
        prog="xdsctl",
        description="Blue-green, canary and mirrored releases on Envoy, from the command line.",
    )
    parser.add_argument(
        "--version", action="version", version=f"xdsctl {__version__}", help="the client's version"
    )
    connection_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(commands)
    return parser


def _failed(error: CliError) -> int:
    print(f"xdsctl: error: {one_line(str(error))}", file=sys.stderr)
    return error.exit_code


def _run(args: argparse.Namespace, client: OperatorClient) -> None:
    """Run a client command: its warnings, then its output, then ``--wait`` if asked."""
    result = args.handler(args, client)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for note in result.notes:
        print(note, file=sys.stderr)
    sys.stdout.write(result.text)
    sys.stdout.flush()
    if client.dry_run:
        print(
            "dry run: the server checked this and would do it; nothing was stored or pushed",
            file=sys.stderr,
        )
    elif getattr(args, "wait", False):
        wait_for_envoys(args, client, result.revision)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xdsctl`` with ``argv`` (default: the process's) and return its exit code."""
    parser = build_parser()
    # Answers the shell's completion requests (`xdsctl completion`) and exits; a no-op
    # otherwise (it acts only when the shell's completion script sets _ARGCOMPLETE).
    argcomplete.autocomplete(parser)
    args = parser.parse_args(argv)
    if getattr(args, "local", None) is not None:
        try:
            return int(args.local(args))
        except CliError as error:
            return _failed(error)
    try:
        client = OperatorClient(
            server(args), credentials(args), dry_run=getattr(args, "dry_run", False)
        )
    except CliError as error:
        return _failed(error)
    try:
        _run(args, client)
    except CliError as error:
        return _failed(error)
    except KeyboardInterrupt:
        return 130  # the shell's convention for "stopped by Ctrl-C"
    except BrokenPipeError:
        # The reader went away (`xdsctl state export | head`): nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # the shell's convention for SIGPIPE
    finally:
        client.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
