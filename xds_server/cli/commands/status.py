"""``xdsctl status``: every Envoy, and whether it holds the current config."""

from __future__ import annotations

import argparse

from xds_server.cli import render
from xds_server.cli.client import OperatorClient
from xds_server.cli.options import Commands, command
from xds_server.cli.result import Result
from xds_server.cli.watching import watch_option, watched
from xds_server.v1 import operator_pb2 as pb


def status(args: argparse.Namespace, client: OperatorClient) -> Result:
    """The Envoys this server knows of, the store it uses and how many are in sync."""
    if args.watch:
        return watched(args, client, "status", render.status)
    reply = client.call("GetStatus", pb.GetStatusRequest())
    return Result(render.status(reply, args.output))


def register(commands: Commands) -> None:
    """Add ``status`` to ``commands``."""
    parser = command(
        commands,
        "status",
        status,
        "every Envoy and whether it has the current config",
        ("table", "yaml", "json"),
        service=False,
    )
    watch_option(parser)
