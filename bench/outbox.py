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

Beside each, the dispatcher's claim round (every second and after every change) is
timed over the same store: per delivery claimed while some are due, and idle. The
target: cost per change follows the change (its events and the hooks that want them),
not the world's size or the backlog.
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
from xds_server.store.outbox import Outcome  # noqa: E402
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


async def _claims(store: Store) -> dict[str, float]:
    """The dispatcher's claim round on this store: with deliveries due (per delivery
    claimed, the receiver still down so each backs off for an hour), then idle once
    every head is in backoff (what a round costs while a dead receiver's backlog waits)."""
    busy, claimed = 0.0, 0
    while True:
        started = time.perf_counter()
        claims = await store.outbox.claim("bench", 64, 10.0, {}, 64)
        busy += time.perf_counter() - started
        if not claims:
            break
        claimed += len(claims)
        for claim in claims:
            await store.outbox.finish(claim, Outcome(False, "ConnectError"), 3600.0, "bench")
    idle = []
    for _ in range(20):
        started = time.perf_counter()
        assert await store.outbox.claim("bench", 64, 10.0, {}, 64) == []
        idle.append(time.perf_counter() - started)
    return {
        "claimed": claimed,
        "claim_ms_per_delivery": round(busy * 1000 / max(1, claimed), 3),
        "idle_claim_ms": round(statistics.median(idle) * 1000, 3),
    }


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
        if i % services == 0:
            await _claims(store)  # every head in backoff, as a dead receiver leaves them


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
            results["no_hook"].update(await _claims(store))
            await store.edit_hooks(lambda hooks: tuple(_hook(f"h{i}") for i in range(3)))
            results["three_hooks"] = await _commits(store, args.services, args.changes)
            results["three_hooks"].update(await _claims(store))
            started = time.perf_counter()
            await _backlog(store, args.services, args.backlog)
            queues = await store.outbox.queues()
            results["backlog"] = {
                "pending": sum(q.pending for q in queues.values()),
                "built_s": round(time.perf_counter() - started, 1),
            }
            await _claims(store)
            results["three_hooks_backlog"] = await _commits(store, args.services, args.changes)
            results["three_hooks_backlog"].update(await _claims(store))
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
