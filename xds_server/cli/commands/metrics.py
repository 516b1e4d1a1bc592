"""``xdsctl metrics``: each tag's live traffic, as the Envoys' stats sinks report it."""

from __future__ import annotations

import argparse
import sys
import time

from xds_server.cli import render
from xds_server.cli.client import OperatorClient
from xds_server.cli.flags import parse_duration
from xds_server.cli.options import Commands, command
from xds_server.cli.result import Result
from xds_server.v1 import operator_pb2 as pb

WATCH_EVERY_SECONDS = 2.0


def show_metrics(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Per tag: requests/s, error rate and latency over ``--window``; ``--watch`` repeats."""
    request = pb.GetTrafficMetricsRequest(service=args.service, window_seconds=args.window)
    if not args.watch:
        return Result(
            render.traffic_metrics(client.call("GetTrafficMetrics", request), args.output)
        )
    while True:  # until Ctrl-C, which main() turns into exit 130
        reply = client.call("GetTrafficMetrics", request)
        text = render.traffic_metrics(reply, args.output, compact=True)
        # One JSON object per line; tables and YAML a blank line apart.
        sys.stdout.write(text if args.output == "json" else text + "\n")
        sys.stdout.flush()
        time.sleep(WATCH_EVERY_SECONDS)


def register(commands: Commands) -> None:
    """Add ``metrics`` to ``commands``."""
    parser = command(
        commands,
        "metrics",
        show_metrics,
        "live traffic per tag: requests/s, errors, latency, shadows",
        render.READ_OUTPUTS,
    )
    parser.add_argument(
        "--window",
        type=parse_duration,
        default=30.0,
        metavar="DURATION",
        help="the sliding window to sum over, e.g. 30s, 2m (default 30s, at most 5m)",
    )
    parser.add_argument(
        "--watch",
        action="store_true",
        help=f"show it again every {WATCH_EVERY_SECONDS:g}s until Ctrl-C",
    )
