"""``--wait``: after a write, block until every connected Envoy holds it."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from xds_server.cli.client import EXIT_NOT_CONFIRMED, EXIT_UNREACHABLE, OperatorClient
from xds_server.cli.render import counted, in_sync_count, sync_counts
from xds_server.errors import CliError
from xds_server.v1 import operator_pb2 as pb

T = TypeVar("T")


PROGRESS_EVERY_SECONDS = 0.25


def _with_progress(client: OperatorClient, wait: Callable[[], T]) -> T:
    """Run ``wait`` while a terminal sees how far the fleet is (``3/5 Envoys in sync,
    2.1 s``), redrawn on one line and cleared at the end."""
    done = threading.Event()
    started = time.monotonic()

    def report() -> None:
        while not done.wait(PROGRESS_EVERY_SECONDS):
            try:
                request = pb.GetStatusRequest(counts_only=True)
                reply = client.call("GetStatus", request, timeout=2)
            except CliError:
                continue  # the wait itself says what went wrong
            line = f"{in_sync_count(*sync_counts(reply))}, {time.monotonic() - started:.1f} s"
            print(f"\r\x1b[K{line}", end="", file=sys.stderr, flush=True)

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        return wait()
    finally:
        done.set()
        reporter.join(timeout=3)
        print("\r\x1b[K", end="", file=sys.stderr, flush=True)


def wait_for_envoys(args: argparse.Namespace, client: OperatorClient, revision: int | None) -> None:
    """Block until every connected Envoy holds the change, or exit 4 naming who lags.

    ``revision`` is the one the write committed (None when the server does not
    say): a failure names it, since the change stays committed either way.
    """
    request = pb.WaitForSyncRequest(timeout_seconds=args.timeout, min_envoys=args.min_envoys)
    committed = f"committed as revision {revision}" if revision else "committed"
    try:
        # The call itself may take the whole timeout: give gRPC a little more.
        def wait() -> pb.WaitForSyncResponse:
            reply: pb.WaitForSyncResponse = client.call(
                "WaitForSync", request, timeout=args.timeout + 10
            )
            return reply

        reply = _with_progress(client, wait) if sys.stderr.isatty() else wait()
    except CliError as error:
        if error.exit_code != EXIT_UNREACHABLE:
            raise
        raise CliError(
            f"{committed}, but not confirmed on the Envoys: {error}", EXIT_NOT_CONFIRMED
        ) from error
    if reply.done:
        if reply.envoys == 0:
            print("no Envoy is connected: nothing to wait for", file=sys.stderr)
        else:
            every = "the" if reply.envoys == 1 else "all"
            on = f"{every} {counted(reply.envoys, 'Envoy')}"
            print(f"on {on} after {reply.seconds:.2f}s", file=sys.stderr)
        return
    lagging = ", ".join(f"{n.node_id} ({n.reason})" for n in reply.lagging)
    if not lagging:
        lagging = (
            f"only {counted(reply.envoys, 'Envoy')} connected, --min-envoys asks for "
            f"{args.min_envoys}"
        )
    raise CliError(f"{committed}, not yet on: {lagging}", EXIT_NOT_CONFIRMED)
