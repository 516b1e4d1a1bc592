"""``xdsctl traffic``: see a service's weights and mirrors, move them, undo a move."""

from __future__ import annotations

import argparse

from google.protobuf.message import Message

from xds_server.cli import render
from xds_server.cli.client import OperatorClient
from xds_server.cli.flags import whole_number
from xds_server.cli.options import (
    Commands,
    command,
    force_option,
    group,
    guard,
    header_switch,
    if_revision,
    parsed,
    wait_options,
)
from xds_server.cli.result import Result
from xds_server.cli.watching import watch_option, watched
from xds_server.model.names import parse_mirrors, parse_weights
from xds_server.v1 import operator_pb2 as pb


def _changed(
    args: argparse.Namespace, client: OperatorClient, method: str, request: Message
) -> Result:
    """Send a traffic write and print the new policy, at the revision it committed (on
    stderr, "unchanged" when it asked for what the service had; with --dry-run, what
    would change, before and after)."""
    before = (
        client.call("GetTraffic", pb.GetTrafficRequest(service=args.service))
        if client.dry_run
        else None
    )
    reply: pb.TrafficChange = client.call(method, request)
    revision = reply.traffic.revision
    notes = []
    if reply.unchanged:
        notes.append(f"unchanged (revision {revision}): no revision made, nothing pushed")
    elif before is not None:
        notes.append(
            f"would change {args.service}: {_weights(before)} -> {_weights(reply.traffic)} "
            f"(revision {before.revision} -> {revision})"
        )
    return Result(
        render.traffic(reply.traffic, args.output), revision, tuple(reply.warnings), notes
    )


def _weights(traffic: pb.Traffic) -> str:
    weights = ",".join(f"{t.tag}={t.weight}" for t in traffic.tags) or "no tags"
    mirrors = ",".join(f"{m.tag}={m.percent}" for m in traffic.mirror)
    return f"{weights}" + (f" mirror {mirrors}" if mirrors else "")


def set_policy(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Replace the weights (``--tags``) and mirrors (``--mirror``)."""
    weights = parsed(parse_weights, args.tags)
    mirrors = [m for text in args.mirror for m in parsed(parse_mirrors, text)]
    request = pb.SetTrafficRequest(
        service=args.service,
        weights=[pb.TagWeight(tag=tag, weight=weight) for tag, weight in weights],
        mirrors=[pb.Mirror(tag=m.tag, percent=m.percent) for m in mirrors],
        force=args.force,
        **guard(args),
    )
    if args.sticky_header is not None:
        request.sticky_header = args.sticky_header
    return _changed(args, client, "SetTraffic", request)


def get_policy(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Show the service's weights and mirrors."""
    if args.watch:
        return watched(args, client, "traffic", _drawn)
    reply = client.call("GetTraffic", pb.GetTrafficRequest(service=args.service))
    if args.output in render.TABLES:
        request = pb.ListDeploymentsRequest(service=args.service)
        held = client.call("ListDeployments", request).deployments
        return Result(render.traffic_table(reply, held, args.output == "wide"))
    return Result(render.traffic(reply, args.output))


def _drawn(reply: pb.Traffic, output: str, compact: bool) -> str:
    return render.traffic(reply, output, compact)


def promote(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Send all traffic to ``--to``, or to the tag that is not serving."""
    request = pb.PromoteTrafficRequest(
        service=args.service, to_tag=args.to or "", force=args.force, **guard(args)
    )
    return _changed(args, client, "PromoteTraffic", request)


def rollback(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Restore ``--to-revision``, or the policy before the latest change."""
    request = pb.RollbackTrafficRequest(service=args.service, force=args.force, **guard(args))
    if args.to_revision is not None:
        request.to_revision = args.to_revision
    return _changed(args, client, "RollbackTraffic", request)


def history(args: argparse.Namespace, client: OperatorClient) -> Result:
    """List the service's changes, the latest ``--limit`` of them if given."""
    request = pb.ListHistoryRequest(service=args.service, limit=args.limit or 0)
    return Result(render.history(client.call("ListHistory", request).entries, args.output))


def register(commands: Commands) -> None:
    """Add ``traffic`` and its subcommands to ``commands``."""
    traffic = group(commands, "traffic", "see and move traffic")
    _register_set(traffic)
    # The seed's YAML stays the default: scripts read it.
    get_outputs = ("yaml", *(o for o in render.READ_OUTPUTS if o != "yaml"))
    watch_option(command(traffic, "get", get_policy, "show weights and mirrors", get_outputs))
    _register_promote(traffic)
    _register_rollback(traffic)
    parser = command(traffic, "history", history, "list every change", render.READ_OUTPUTS)
    parser.add_argument(
        "--limit", type=whole_number(1, 1_000_000), metavar="N", help="show the latest N changes"
    )


def _register_set(traffic: Commands) -> None:
    parser = command(traffic, "set", set_policy, "replace the traffic policy", ("yaml", "json"))
    parser.add_argument(
        "--tags",
        required=True,
        metavar="TAG=WEIGHT,...",
        help="weights adding up to 100; tags left out are scaled down",
    )
    parser.add_argument(
        "--mirror",
        action="append",
        default=[],
        metavar="TAG=PERCENT,...",
        help="shadow a share of requests to a listed tag",
    )
    header_switch(
        parser,
        "sticky-header",
        "keep each value of this request header on one tag while the weights hold "
        "(kept by later changes until --no-sticky)",
        off="no-sticky",
    )
    force_option(parser)
    if_revision(parser)
    wait_options(parser)


def _register_promote(traffic: Commands) -> None:
    parser = command(
        traffic,
        "promote",
        promote,
        # %%: argparse %-formats the help that `xdsctl traffic --help` lists.
        "send 100%% to the other tag; again = rollback",
        ("yaml", "json"),
    )
    parser.add_argument("--to", metavar="TAG", help="the tag to send all traffic to")
    force_option(parser)
    if_revision(parser)
    wait_options(parser)


def _register_rollback(traffic: Commands) -> None:
    parser = command(traffic, "rollback", rollback, "restore an earlier revision", ("yaml", "json"))
    parser.add_argument(
        "--to-revision",
        type=whole_number(),
        metavar="N",
        help="the revision to restore (default: before the latest change)",
    )
    force_option(parser)
    if_revision(parser)
    wait_options(parser)
