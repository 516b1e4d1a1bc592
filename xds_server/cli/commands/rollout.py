"""``xdsctl rollout``: move a canary up step by step, judged on the Envoys' own figures."""

from __future__ import annotations

import argparse
import time

from xds_server.cli import render
from xds_server.cli.client import OperatorClient
from xds_server.cli.flags import parse_duration, whole_number
from xds_server.cli.options import Commands, command, dry_run_option, group
from xds_server.cli.result import Handler, Result
from xds_server.cli.watching import watch_option, watched
from xds_server.v1 import operator_pb2 as pb


def start(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Start the rollout; its first step moves traffic at once."""
    request = pb.StartRolloutRequest(
        service=args.service,
        to_tag=args.to,
        steps=[part.strip() for part in args.steps.split(",")],
        interval_seconds=args.interval,
        max_error_rate=args.max_error_rate or "",
        max_p99=args.max_p99 or "",
        no_data_timeout_seconds=args.no_data_timeout,
    )
    if args.min_requests is not None:
        request.min_requests = args.min_requests
    if args.failure_limit is not None:
        request.failure_limit = args.failure_limit
    reply = client.call("StartRollout", request)
    return Result(render.rollout(reply, args.output, time.time()), reply.revision)


def status(args: argparse.Namespace, client: OperatorClient) -> Result:
    """The rollout's phase, step, weights and the verdicts behind them."""
    if args.watch:
        return watched(args, client, "rollout", lambda r, out, compact: _drawn(r, out, compact))
    reply = client.call("GetRollout", pb.GetRolloutRequest(service=args.service))
    return Result(render.rollout(reply, args.output, time.time()))


def _drawn(reply: pb.Rollout, output: str, compact: bool) -> str:
    return render.rollout(reply, output, time.time(), compact=compact)


def list_rollouts(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Every service's rollout, running or last."""
    reply = client.call("ListRollouts", pb.ListRolloutsRequest())
    return Result(render.rollouts(reply.rollouts, args.output))


def _change(action: str) -> Handler:
    def run(args: argparse.Namespace, client: OperatorClient) -> Result:
        request = pb.ChangeRolloutRequest(
            service=args.service,
            action=action,
            full=getattr(args, "full", False),
            reason=getattr(args, "reason", None) or "",
        )
        reply = client.call("ChangeRollout", request)
        return Result(render.rollout(reply, args.output, time.time()), reply.revision)

    run.__doc__ = f"``rollout {action}``"
    return run


OUTPUTS = render.READ_OUTPUTS


def register(commands: Commands) -> None:
    """Add ``rollout`` and its subcommands to ``commands``."""
    rollout = group(commands, "rollout", "advance a canary by itself, roll back on its own")
    _register_start(rollout)
    parser = command(rollout, "status", status, "phase, step, weights and verdicts", OUTPUTS)
    watch_option(parser)
    command(rollout, "list", list_rollouts, "every service's rollout", OUTPUTS, service=False)
    for action, help_text in (
        ("pause", "hold the rollout at its step (manual traffic changes are allowed then)"),
        ("resume", "go on from the step it was paused at, its weights set again"),
    ):
        dry_run_option(command(rollout, action, _change(action), help_text, OUTPUTS))
    parser = command(
        rollout, "abort", _change("abort"), "all traffic back to the stable tag, at once", OUTPUTS
    )
    dry_run_option(parser)
    parser.add_argument("--reason", metavar="TEXT", help="why, for the history entry")
    parser = command(rollout, "promote", _change("promote"), "pass the manual gate", OUTPUTS)
    dry_run_option(parser)
    parser.add_argument("--full", action="store_true", help="skip every remaining step to 100%%")


def _register_start(rollout: Commands) -> None:
    parser = command(rollout, "start", start, "start a rollout to --to", OUTPUTS)
    dry_run_option(parser)
    parser.add_argument("--to", required=True, metavar="TAG", help="the tag to roll out")
    parser.add_argument(
        "--steps",
        required=True,
        metavar="P,P,pause,...,100",
        help="ascending canary percentages ending at 100; pause is a manual gate",
    )
    parser.add_argument(
        "--interval",
        type=parse_duration,
        default=60.0,
        metavar="DURATION",
        help="how long each step runs before it is judged (default 60s, at least 1s)",
    )
    parser.add_argument(
        "--max-error-rate",
        metavar="RATE",
        help="the canary's 5xx share at most: 1%%, 0.5%%, or +0.5%% over the stable tag's",
    )
    parser.add_argument(
        "--max-p99",
        metavar="LATENCY",
        help="the canary's p99 at most: 300ms, or +50ms over the stable tag's",
    )
    parser.add_argument(
        "--min-requests",
        type=whole_number(1, 1_000_000_000),
        metavar="N",
        help="fewer real requests in an interval is no data (default 100)",
    )
    parser.add_argument(
        "--failure-limit",
        type=whole_number(1, 1000),
        metavar="N",
        help="failed intervals in a row that abort (default 1)",
    )
    parser.add_argument(
        "--no-data-timeout",
        type=parse_duration,
        default=300.0,
        metavar="DURATION",
        help="abort after this long without data (default 5m)",
    )
