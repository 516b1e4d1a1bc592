"""``--watch``: a view drawn again on every change the server streams (``Watch``).

On a terminal the view is redrawn in place; otherwise (a pipe, a CI log) each update
is printed after the last, and with ``-o json`` each is one JSON object on one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from xds_server.cli.client import OperatorClient
from xds_server.cli.result import Result
from xds_server.v1 import operator_pb2 as pb

# Clear the screen and go home.
_REDRAW = "\x1b[H\x1b[2J"


def watch_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--watch",
        action="store_true",
        help="show it again on every change until Ctrl-C (-o json: one object per line)",
    )


def watched(
    args: argparse.Namespace,
    client: OperatorClient,
    view: str,
    draw: Callable[[Any, str, bool], str],
) -> Result:
    """Draw each event of ``view`` (its field of WatchEvent) until Ctrl-C."""
    redraw = sys.stdout.isatty() and args.output != "json"
    request = pb.WatchRequest(service=getattr(args, "service", ""), view=view)
    for event in client.watch(request):
        text = draw(getattr(event, view), args.output, True)
        if redraw:
            sys.stdout.write(_REDRAW + text)
        elif args.output == "yaml":
            sys.stdout.write("---\n" + text)  # a stream of YAML documents
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    return Result("")
