"""``xdsctl version``: this client's version and, when it answers, the server's."""

from __future__ import annotations

import argparse
import sys

from xds_server import __version__
from xds_server.cli import render
from xds_server.cli.client import OperatorClient
from xds_server.cli.options import Commands, command
from xds_server.cli.result import Result
from xds_server.errors import CliError
from xds_server.v1 import operator_pb2 as pb


def version(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Both versions; the client's alone (and the exit code of the failure) when the
    server does not answer."""
    try:
        server: str | None = client.call("GetVersion", pb.GetVersionRequest()).version
        failure = None
    except CliError as error:
        server, failure = None, error
    data = {"client": __version__, "server": server}
    if args.output == "text":
        text = f"client: {__version__}\n" + (f"server: {server}\n" if server else "")
    else:
        text = render.structured(data, args.output)
    if failure is not None:
        sys.stdout.write(text)
        raise failure
    return Result(text)


def register(commands: Commands) -> None:
    """Add ``version`` to ``commands``."""
    command(
        commands,
        "version",
        version,
        "the client's version and the server's",
        ("text", "yaml", "json"),
        service=False,
    )
