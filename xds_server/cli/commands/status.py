"""``xdsctl status``: every Envoy, and whether it holds the current config."""

from __future__ import annotations

import argparse

from xds_server.cli import render
from xds_server.cli.client import EXIT_NOT_CONFIRMED, OperatorClient
from xds_server.cli.options import Commands, command
from xds_server.cli.result import Result
from xds_server.cli.watching import watch_option, watched
from xds_server.errors import CliError
from xds_server.v1 import operator_pb2 as pb


def status(args: argparse.Namespace, client: OperatorClient) -> Result:
    """The Envoys this server knows of, the store it uses and how many are in sync."""
    if args.watch:
        return watched(args, client, "status", render.status)
    reply = client.call("GetStatus", pb.GetStatusRequest())
    text = render.status(reply, args.output)
    if args.fail_unsynced:
        connected = [n for n in reply.nodes if n.connected]
        lagging = [n.node_id for n in connected if not n.in_sync]
        if not connected or lagging:
            print(text, end="")
            why = f"not in sync: {', '.join(lagging[:20])}" if lagging else "no Envoy is connected"
            raise CliError(f"--fail-unsynced: {why}", EXIT_NOT_CONFIRMED)
    return Result(text)


def register(commands: Commands) -> None:
    """Add ``status`` to ``commands``."""
    parser = command(
        commands,
        "status",
        status,
        "every Envoy and whether it has the current config",
        render.READ_OUTPUTS,
        service=False,
    )
    watch_option(parser)
    parser.add_argument(
        "--fail-unsynced",
        action="store_true",
        help="exit 4 when any connected Envoy is not in sync, or none is connected",
    )
