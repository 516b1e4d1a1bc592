"""``xdsctl state``: the whole state as one document, out (backups) and in (restores)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xds_server.cli import render
from xds_server.cli.client import EXIT_USAGE, OperatorClient
from xds_server.cli.options import Commands, command, dry_run_option, group
from xds_server.cli.result import Result
from xds_server.errors import CliError
from xds_server.v1 import operator_pb2 as pb


def export(args: argparse.Namespace, client: OperatorClient) -> Result:
    """The state document, printed as the server made it (hooks' secrets left out
    unless ``--include-secrets``)."""
    request = pb.ExportStateRequest(include_secrets=args.include_secrets)
    return Result(client.call("ExportState", request).document)


def import_document(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Load ``file`` (``-``: stdin) as the whole state; ``--replace`` to overwrite one."""
    request = pb.ImportStateRequest(document=_read_document(args.file), replace=args.replace)
    return Result(render.imported(client.call("ImportState", request), args.output))


def _read_document(file: str) -> str:
    """The text of ``file`` (``-``: stdin); unreadable or not UTF-8 is a usage error."""
    try:
        raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
        return raw.decode("utf-8")
    except OSError as error:
        raise CliError(f"cannot read {file}: {error.strerror}", EXIT_USAGE) from error
    except UnicodeDecodeError as error:
        raise CliError(
            f"{file} is not a state document: it is not UTF-8 text ({error.reason} at "
            f"byte {error.start}); import a file made by `xdsctl state export`",
            EXIT_USAGE,
        ) from error


def register(commands: Commands) -> None:
    """Add ``state`` and its subcommands to ``commands``."""
    state = group(commands, "state", "export or import everything (backups, moving to PostgreSQL)")
    exporting = command(state, "export", export, "print the whole state as JSON", service=False)
    exporting.add_argument(
        "--include-secrets",
        action="store_true",
        help="include hooks' signing secrets (keep the file as safe as the secrets)",
    )
    parser = command(
        state,
        "import",
        import_document,
        "load a `state export` document as the whole state",
        ("text", "yaml", "json"),
        service=False,
    )
    parser.add_argument("file", metavar="FILE", help="the exported JSON ('-': stdin)")
    dry_run_option(parser)
    parser.add_argument(
        "--replace",
        action="store_true",
        help="overwrite a store that already holds services (refused otherwise)",
    )
