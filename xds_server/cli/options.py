"""The flags many commands share, and what they mean once parsed.

How to reach the server (``--server``, ``--token-file``, the TLS files, each
with its environment variable), the way every client command is registered
(``command``), ``--if-revision``, the ``--wait`` options and ``--endpoint``,
and the reading of command-line text with the model's parsers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeAlias, TypeVar

from xds_server.api.metadata import MAX_WAIT_SECONDS
from xds_server.cli import contexts
from xds_server.cli.client import DEFAULT_PORT, DEFAULT_SERVER, EXIT_USAGE, Credentials
from xds_server.cli.flags import address, duration, whole_number
from xds_server.cli.result import Handler
from xds_server.cli.secret_files import read_secret, warn_if_shared
from xds_server.errors import CliError, InvalidRequest
from xds_server.model.names import parse_endpoint
from xds_server.model.state import DEFAULT_SERVICE
from xds_server.v1 import operator_pb2 as pb

# The longest --wait the server takes (``WaitForSync``): refused here, before any write.

# What `add_subparsers()` returns: where a command or a group of them is added.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Parsed = TypeVar("Parsed")

# Options for reaching the server: flag, environment variable, help.
CONNECTION_OPTIONS = (
    ("--server", "XDSCTL_SERVER", f"operator API address (default {DEFAULT_SERVER})"),
    (
        "--token-file",
        "XDSCTL_TOKEN_FILE",
        "file holding the API token (or the token in XDSCTL_TOKEN)",
    ),
    ("--ca", "XDSCTL_CA", "CA certificate (PEM) to verify the server with; turns TLS on"),
    ("--cert", "XDSCTL_CERT", "client certificate (PEM) for mTLS"),
    ("--key", "XDSCTL_KEY", "the client certificate's private key (PEM)"),
)


# --- registering commands ------------------------------------------------------


def connection_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--server``, ``--token-file``, ``--ca``, ``--cert`` and ``--key`` to ``parser``."""
    # SUPPRESS lets `xdsctl --server X traffic get` and `xdsctl traffic get
    # --server X` both work without the subcommand's default hiding the other.
    for flag, env, what in CONNECTION_OPTIONS:
        parser.add_argument(flag, default=argparse.SUPPRESS, help=f"{what} (env {env})")
    parser.add_argument(
        "--context",
        default=argparse.SUPPRESS,
        metavar="NAME",
        help=f"the context to use from `xdsctl config` (env {contexts.CONTEXT_ENV}); "
        "flags and environment variables win over it",
    )


def group(commands: Commands, name: str, help_text: str) -> Commands:
    """A command group (``xdsctl traffic ...``), where its subcommands are added."""
    return commands.add_parser(name, help=help_text).add_subparsers(
        dest=f"{name}_command", required=True, metavar="COMMAND"
    )


def command(
    commands: Commands,
    name: str,
    handler: Handler,
    help_text: str,
    outputs: Sequence[str] = (),
    service: bool = True,
) -> argparse.ArgumentParser:
    """A client command run by ``handler``, with the connection options, ``-o`` when it
    has ``outputs`` (the first is the default) and ``--service`` unless told otherwise."""
    # ``help`` is %-formatted by argparse (a literal % is %%); the description is not.
    parser = commands.add_parser(name, help=help_text, description=help_text.replace("%%", "%"))
    parser.set_defaults(handler=handler)
    connection_options(parser)
    if outputs:
        parser.add_argument(
            "-o",
            "--output",
            choices=outputs,
            default=outputs[0],
            help=f"output format (default {outputs[0]})",
        )
    if service:
        parser.add_argument(
            "--service",
            default=DEFAULT_SERVICE,
            help=f"the service to act on (default {DEFAULT_SERVICE})",
        )
    return parser


def dry_run_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--dry-run`` to a command that writes."""
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="let the server check the change and say what it would do; store and push "
        "nothing (exit 0, or 1 if it would be refused)",
    )


def wait_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--wait``, ``--timeout`` and ``--min-envoys`` (and ``--dry-run``) to a command
    that writes."""
    dry_run_option(parser)
    parser.add_argument(
        "--wait",
        action="store_true",
        help="return once every connected Envoy has the change (exit 4 if not in time)",
    )
    parser.add_argument(
        "--timeout",
        type=duration(MAX_WAIT_SECONDS),
        default=30.0,
        metavar="DURATION",
        help="how long --wait waits, e.g. 30s, 500ms, 2m (default 30s)",
    )
    parser.add_argument(
        "--min-envoys",
        type=whole_number(0, 1_000_000),
        default=0,
        metavar="N",
        help="with --wait, fail unless at least N Envoys are connected and have it",
    )


def force_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--force``: abort a running rollout of the service, then make the change."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="abort the service's running rollout first (recorded in history), then change",
    )


def if_revision(parser: argparse.ArgumentParser) -> None:
    """Add ``--if-revision N``, the compare-and-set guard of a write."""
    parser.add_argument(
        "--if-revision",
        type=whole_number(),
        metavar="N",
        help="refuse unless the service is still at revision N (compare-and-set)",
    )


def header_switch(
    parser: argparse.ArgumentParser, name: str, help_text: str, off: str | None = None
) -> None:
    """Add ``--NAME HEADER`` and its off switch (``--no-NAME`` unless ``off`` names it).

    Both fill one attribute: None when neither is given (the setting stays), ""
    for the off switch, which is how the API removes a header.
    """
    dest = name.replace("-", "_")
    switch = parser.add_mutually_exclusive_group()
    switch.add_argument(f"--{name}", dest=dest, metavar="HEADER", help=help_text)
    switch.add_argument(
        f"--{off or 'no-' + name}",
        dest=dest,
        action="store_const",
        const="",
        help=f"remove the --{name} setting",
    )


def endpoint_option(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--endpoint HOST:PORT``."""
    parser.add_argument(
        "--endpoint",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="where the deployment listens (repeatable): 10.0.0.5:8080, [::1]:8080, app:8080",
    )


# --- reading them --------------------------------------------------------------


def parsed(parse: Callable[[str], Parsed], text: str) -> Parsed:
    """Run a model parser on command-line text; its refusal is a usage error."""
    try:
        return parse(text)
    except InvalidRequest as error:
        raise CliError(str(error), EXIT_USAGE) from error


def endpoints(args: argparse.Namespace) -> list[pb.Endpoint]:
    """The ``--endpoint`` values (argparse requires one) as the API takes them."""
    given = [parsed(parse_endpoint, text) for text in args.endpoint]
    return [pb.Endpoint(host=e.host, port=e.port) for e in given]


def guard(args: argparse.Namespace) -> dict[str, int]:
    """``--if-revision`` as request fields: none when it is not given."""
    return {} if args.if_revision is None else {"if_revision": args.if_revision}


def _given(args: argparse.Namespace, flag: str) -> str | None:
    """A connection option from its flag, else its environment variable."""
    env = next(env for name, env, _ in CONNECTION_OPTIONS if name == flag)
    return getattr(args, flag.lstrip("-").replace("-", "_"), None) or os.environ.get(env) or None


def _from_context(args: argparse.Namespace, flag: str) -> str | None:
    """What the context in force says of a connection option (paths with ``~`` expanded)."""
    if not hasattr(args, "_context_settings"):
        chosen = contexts.selected(getattr(args, "context", None))
        args._context_settings = chosen[1] if chosen else {}
    value: str | None = args._context_settings.get(flag.lstrip("-"))
    if value and flag != "--server":
        value = str(Path(value).expanduser())
    return value


def _option(args: argparse.Namespace, flag: str) -> str | None:
    """A connection option from its flag, else its environment variable, else the
    context in force."""
    return _given(args, flag) or _from_context(args, flag)


def server(args: argparse.Namespace) -> str:
    """The server's address (--server, XDSCTL_SERVER): HOST:PORT, or HOST for the
    default API port; a URL is refused with the fix."""
    given = _option(args, "--server") or DEFAULT_SERVER
    _scheme, separator, rest = given.partition("://")
    if separator:
        raise CliError(
            f"--server / XDSCTL_SERVER {given[:60]!r} is a URL: give HOST:PORT, e.g. "
            f"--server {rest.split('/')[0] or DEFAULT_SERVER} (for TLS, add --ca FILE)",
            EXIT_USAGE,
        )
    bracketed = given.startswith("[")
    if ("]:" not in given) if bracketed else (":" not in given):
        given = f"{given}:{DEFAULT_PORT}"  # a host alone: the API's default port
    try:
        return address(given)
    except argparse.ArgumentTypeError as error:
        raise CliError(
            f"--server / XDSCTL_SERVER {given[:60]!r} is not HOST:PORT ({error}): "
            f"write e.g. {DEFAULT_SERVER}",
            EXIT_USAGE,
        ) from None


def credentials(args: argparse.Namespace) -> Credentials:
    """The token (--token-file, XDSCTL_TOKEN) and TLS files the command line names."""
    token = os.environ.get("XDSCTL_TOKEN")
    # A token in the environment wins over the context's token file, not over a flag's.
    token_file = _given(args, "--token-file") or (
        None if token else _from_context(args, "--token-file")
    )
    if token_file:
        token = read_secret(Path(token_file), "--token-file")
    paths = {flag: _option(args, flag) for flag in ("--ca", "--cert", "--key")}
    if paths["--key"]:
        warn_if_shared(Path(paths["--key"]), "--key")
    token = token.strip() if token else None
    if token is not None and not (token.isascii() and token.isprintable()):
        raise CliError(
            "the token (XDSCTL_TOKEN or --token-file) holds characters no token has "
            "(tokens are xdst_ and letters, digits, - and _): check what was pasted",
            EXIT_USAGE,
        )
    return Credentials(
        token=token,
        **{flag.lstrip("-"): Path(value) for flag, value in paths.items() if value},
    )
