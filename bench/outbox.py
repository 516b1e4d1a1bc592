"""What the outbox costs a commit, and a claim, at the sizes users reach.

    python3 bench/outbox.py --services 10000 --backlog 100000 --json bench/results/outbox.json
    python3 bench/outbox.py --pg postgresql://... (the same on PostgreSQL)

In-process, on the real store (a state file in a temp dir, or a fresh PostgreSQL
database): a world of ``--services`` services (blue 100, green 0 each) is imported,
then ``--changes`` traffic changes (blue/green weights) are committed one by one on
random services, each timed from call to commit:

1. with no hook (the outbox writes events and no delivery);
2. with three hooks that want every event (three deliveries per event);
3. the same, after a receiver that is down left ``--backlog`` undelivered deliveries
   spread over every service (heads in backoff, the rest blocked behind them).

Beside each, one claim round (what the dispatcher runs every second and after every
change) is timed over the same store. The target: cost per change follows the change
(its events and the hooks that want them), not the world's size or the backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.world import world_document  # noqa: E402
from xds_server.model import operations as ops  # noqa: E402
from xds_server.model.hooks import new_hook  # noqa: E402
from xds_server.store.base import Store  # noqa: E402
from xds_server.store.outbox import PENDING, Outcome  # noqa: E402
from xds_server.store.postgres import PostgresStore  # noqa: E402
from xds_server.store.sqlite import SqliteStore  # noqa: E402
from xds_server.store.state_document import state_from_json  # noqa: E402

CTX = ops.Context(actor="bench", now="2026-12-01T00:00:00Z", command="bench", new_id=lambda: "x")


def _hook(name: str) -> Any:
    return new_hook(
        name=name,
        url="http://127.0.0.1:9/hook",
        command=(),
        secret="",
        events=("*",),
        timeout_s=5.0,
        created_at="2026-12-01T00:00:00Z",
        created_by="bench",
    )


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _commits(store: Store, services: int, changes: int) -> dict[str, float]:
    seconds = []
    for _ in range(changes):
        name = f"s{random.randrange(services)}"
        green = random.randrange(1, 100)
        started = time.perf_counter()
        await store.transact(
            lambda world, _h, n=name, g=green: ops.set_traffic(
                world, CTX, service=n, weights=[("blue", 100 - g), ("green", g)]
            )
        )
        seconds.append(time.perf_counter() - started)
    return {
        "p50_ms": round(statistics.median(seconds) * 1000, 3),
        "p99_ms": round(_percentile(seconds, 0.99) * 1000, 3),
    }


async def _claim_ms(store: Store, rounds: int = 20) -> float:
    """One dispatcher round's claim on this store (nothing is due, or a little)."""
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        claims = await store.outbox.claim("bench", time.time(), 64, 10.0, {}, 4)
        seconds.append(time.perf_counter() - started)
        for claimed in claims:  # a receiver still down: back off for an hour
            await store.outbox.finish(
                claimed,
                Outcome(False, "ConnectError"),
                PENDING,
                time.time() + 3600,
                "bench",
                time.time(),
            )
    return round(statistics.median(seconds) * 1000, 3)


async def _backlog(store: Store, services: int, deliveries: int) -> None:
    """``deliveries`` undelivered over every service: changes the hooks cannot deliver."""
    per_change = 3 * 2  # three hooks; traffic.changed and a deployment.scale or none
    changes = max(1, deliveries // per_change)
    for i in range(changes):
        name = f"s{i % services}"
        weights = [("blue", 100)] if i // services % 2 == 0 else [("blue", 100), ("green", 0)]
        await store.transact(
            lambda world, _h, n=name, w=weights: ops.set_traffic(world, CTX, service=n, weights=w)
        )
        if i % 5000 == 0:
            await _claim_ms(store, rounds=1)  # put the heads in backoff, as a dead hook would


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        store: Store
        if args.pg:
            store = await PostgresStore.open(args.pg)
        else:
            store = await SqliteStore.open(Path(tmp) / "state.db")
        try:
            document = json.dumps(world_document(args.services))
            await store.import_state(state_from_json(document), replace=True)
            await store.load()
            results: dict[str, Any] = {"services": args.services, "changes": args.changes}
            results["no_hook"] = await _commits(store, args.services, args.changes)
            results["no_hook"]["claim_ms"] = await _claim_ms(store)
            await store.edit_hooks(lambda hooks: tuple(_hook(f"h{i}") for i in range(3)))
            results["three_hooks"] = await _commits(store, args.services, args.changes)
            results["three_hooks"]["claim_ms"] = await _claim_ms(store)
            started = time.perf_counter()
            await _backlog(store, args.services, args.backlog)
            queues = await store.outbox.queues()
            results["backlog"] = {
                "pending": sum(q.pending for q in queues.values()),
                "built_s": round(time.perf_counter() - started, 1),
            }
            await _claim_ms(store, rounds=3)  # every head in backoff
            results["three_hooks_backlog"] = await _commits(store, args.services, args.changes)
            results["three_hooks_backlog"]["claim_ms"] = await _claim_ms(store)
            return results
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--changes", type=int, default=300)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--pg", help="a PostgreSQL URL (a fresh database) instead of a file")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
