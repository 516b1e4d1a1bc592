"""``xdsctl hooks``: where events go (admin). See docs/events.md."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xds_server.cli import render
from xds_server.cli.client import EXIT_REFUSED, EXIT_USAGE, OperatorClient
from xds_server.cli.flags import parse_duration, whole_number
from xds_server.cli.options import Commands, command, dry_run_option, group
from xds_server.cli.result import Result
from xds_server.cli.secret_files import read_secret
from xds_server.errors import CliError
from xds_server.v1 import operator_pb2 as pb


def hook_data(hook: pb.Hook) -> dict[str, Any]:
    """A hook as YAML or JSON shows it (never a secret: the server sends none)."""
    return {
        "name": hook.name,
        "kind": hook.kind,
        "target": hook.target,
        "events": list(hook.events),
        "timeout_seconds": hook.timeout_seconds,
        "signed": hook.signed,
        "pending": hook.pending,
        "failed": hook.failed,
        "created_at": hook.created_at,
        "created_by": hook.created_by,
    }


def attempt_data(attempt: pb.HookAttempt) -> dict[str, Any]:
    return {
        "time": attempt.time,
        "event_type": attempt.event_type,
        "event_id": attempt.event_id,
        "attempt": attempt.attempt,
        "outcome": attempt.outcome,
        "status": attempt.status,
        "response": attempt.response,
        "replica": attempt.replica or None,
    }


def _one_line(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _hooks_text(hooks: Sequence[pb.Hook], output: str) -> str:
    if output not in render.TABLES:
        return render.structured([hook_data(h) for h in hooks], output)
    if not hooks:
        return "no hooks: add one with `xdsctl hooks add NAME --url URL`\n"
    headers = ("NAME", "KIND", "TARGET", "EVENTS", "SIGNED", "TIMEOUT", "PENDING", "FAILED")
    rows = [
        (
            h.name,
            h.kind,
            _one_line(h.target),
            ",".join(h.events),
            "yes" if h.signed else "no",
            f"{h.timeout_seconds:g}s",
            h.pending,
            h.failed,
        )
        for h in hooks
    ]
    return render.table(headers, rows)


def add(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Add a hook; it receives every matching event committed from now on."""
    command_line: list[str] = []
    if args.exec is not None:
        try:
            command_line = shlex.split(args.exec)
        except ValueError as error:
            raise CliError(f"--exec {args.exec!r} does not parse: {error}", EXIT_USAGE) from None
        if not command_line:
            raise CliError(
                "--exec needs a command: for example --exec '/usr/local/bin/scale --all'",
                EXIT_USAGE,
            )
    secret = read_secret(args.secret_file, "--secret-file") if args.secret_file else ""
    request = pb.AddHookRequest(
        name=args.name,
        url=args.url or "",
        command=command_line,
        secret=secret,
        events=[p for p in args.events.split(",")] if args.events else [],
        timeout_seconds=args.timeout,
    )
    hook = client.call("AddHook", request)
    if args.output != "text":
        return Result(render.structured(hook_data(hook), args.output))
    signed = ", signed" if hook.signed else ""
    return Result(
        f"hook {hook.name} added ({hook.kind} {hook.target}{signed}; events "
        f"{','.join(hook.events)}): `xdsctl hooks test {hook.name}` checks it answers\n"
    )


def list_hooks(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Every hook, what it subscribes to and how its deliveries stand."""
    hooks = client.call("ListHooks", pb.ListHooksRequest()).hooks
    return Result(_hooks_text(hooks, args.output))


def remove(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Remove a hook and drop its undelivered events."""
    hook = client.call("RemoveHook", pb.RemoveHookRequest(name=args.name))
    if args.output != "text":
        return Result(render.structured(hook_data(hook), args.output))
    dropped = f"; {hook.pending} undelivered events dropped" if hook.pending else ""
    return Result(f"hook {hook.name} removed{dropped}\n")


def test(args: argparse.Namespace, client: OperatorClient) -> Result:
    """Send a hook.test event now; exit 1 when the hook did not take it."""
    attempt = client.call("TestHook", pb.TestHookRequest(name=args.name))
    delivered = attempt.outcome == "delivered"
    if args.output != "text":
        text = render.structured(attempt_data(attempt), args.output)
    else:
        answer = f": {_one_line(attempt.response, 200)}" if attempt.response else ""
        verdict = "delivered" if delivered else "NOT delivered"
        text = (
            f"hook {attempt.hook}: hook.test {attempt.event_id} {verdict} "
            f"({attempt.status}){answer}\n"
        )
    if not delivered:
        print(text, end="")
        raise CliError(
            f"hook {attempt.hook} did not take the test event ({attempt.status}): check "
            "the receiver, then `xdsctl hooks deliveries` shows each attempt",
            EXIT_REFUSED,
        )
    return Result(text)


def deliveries(args: argparse.Namespace, client: OperatorClient) -> Result:
    """The hook's latest attempts, newest first."""
    request = pb.ListHookDeliveriesRequest(name=args.name, limit=args.limit or 0)
    attempts = client.call("ListHookDeliveries", request).attempts
    if args.output not in render.TABLES:
        return Result(render.structured([attempt_data(a) for a in attempts], args.output))
    if not attempts:
        return Result(f"hook {args.name} has made no delivery attempt yet\n")
    headers = ("TIME", "EVENT", "DELIVERY", "ATTEMPT", "OUTCOME", "STATUS", "RESPONSE")
    rows = [
        (
            a.time,
            a.event_type,
            a.event_id,
            a.attempt,
            a.outcome,
            a.status,
            _one_line(a.response, 40) or "-",
        )
        for a in attempts
    ]
    return Result(render.table(headers, rows))


def register(commands: Commands) -> None:
    """Add ``hooks`` and its subcommands to ``commands``."""
    hooks = group(commands, "hooks", "send events to webhooks and commands (admin)")
    adding = command(
        hooks,
        "add",
        add,
        "add a hook: a webhook (--url) or a command fed each event on stdin (--exec)",
        ("text", "yaml", "json"),
        service=False,
    )
    adding.add_argument("name", help="the hook's name, e.g. chat-release")
    dry_run_option(adding)
    target = adding.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", metavar="URL", help="POST each event's JSON here (http/https)")
    target.add_argument(
        "--exec",
        metavar="'COMMAND ...'",
        help="run COMMAND (no shell) with the event's JSON on stdin; exit 0 = delivered",
    )
    adding.add_argument(
        "--secret-file",
        type=Path,
        metavar="FILE",
        help="sign each POST with the secret in FILE (X-Xds-Signature: sha256=HMAC)",
    )
    adding.add_argument(
        "--events",
        metavar="PATTERNS",
        help="comma-separated types or families, e.g. traffic.*,rollout.aborted (default *)",
    )
    adding.add_argument(
        "--timeout",
        type=parse_duration,
        default=5.0,
        metavar="DURATION",
        help="how long one attempt may take, e.g. 5s (default 5s, at most 5m)",
    )
    command(
        hooks,
        "list",
        list_hooks,
        "list hooks and their deliveries",
        render.READ_OUTPUTS,
        service=False,
    )
    for name, handler, help_text in (
        ("remove", remove, "remove a hook (its undelivered events are dropped)"),
        ("test", test, "send a hook.test event now and print the outcome"),
    ):
        parser = command(hooks, name, handler, help_text, ("text", "yaml", "json"), service=False)
        parser.add_argument("name", help="the hook's name")
        if name == "remove":
            dry_run_option(parser)
    listing = command(
        hooks,
        "deliveries",
        deliveries,
        "the hook's latest delivery attempts",
        render.READ_OUTPUTS,
        service=False,
    )
    listing.add_argument("name", help="the hook's name")
    listing.add_argument(
        "--limit",
        type=whole_number(1, 500),
        metavar="N",
        help="show at most N attempts (default 20)",
    )
