"""``xdsctl apply``: register a deployment and bind it to a tag."""

from __future__ import annotations

import argparse

from xds_server.cli import render
from xds_server.cli.client import OperatorClient
from xds_server.cli.options import (
    Commands,
    command,
    endpoint_option,
    endpoints,
    guard,
    if_revision,
    parsed,
    wait_options,
)
from xds_server.cli.result import Result
from xds_server.model.names import parse_label
from xds_server.v1 import operator_pb2 as pb


def apply(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Register the deployment at ``--endpoint``; the server picks or checks its tag."""
    labels = [parsed(parse_label, text) for text in args.label]
    request = pb.ApplyRequest(
        service=args.service,
        endpoints=endpoints(args),
        labels=[pb.Label(key=k, value=v) for k, v in labels],
        in_place=args.in_place,
        **guard(args),
    )
    if args.deployment_tag is not None:
        request.deployment_tag = args.deployment_tag
    elif args.bluegreen:
        request.bluegreen = True
    reply = client.call("Apply", request)
    return Result(render.applied(reply, args.output), reply.revision, tuple(reply.warnings))


def register(commands: Commands) -> None:
    """Add ``apply`` to ``commands``."""
    parser = command(
        commands, "apply", apply, "register a deployment and tag it", ("text", "yaml", "json")
    )
    endpoint_option(parser)
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label for the deployment (repeatable), e.g. version=v2",
    )
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--deployment-tag", metavar="TAG", help="bind the deployment to TAG")
    choice.add_argument(
        "--bluegreen", action="store_true", help="bind it to the colour opposite to the serving tag"
    )
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="allow an apply onto a tag that carries traffic: it moves to the new "
        "deployment at once (refused without this)",
    )
    if_revision(parser)
    wait_options(parser)
