"""Waiting for the fleet: a NACK ends every concurrent wait at once (issue 15, item 8).

Unit tests of ``NodeRegistry.wait_for_sync`` with a stand-in stream, so the
interleaving that matters (a second waiter starting between a NACK and the
first waiter's next look) happens on every run, not by luck.
"""

from __future__ import annotations

import asyncio

import pytest

from xds_server.xds.registry import NodeRegistry, Sync, TypeView, WaitResult
from xds_server.xds.resources import CLUSTER

TIMEOUT_SECONDS = 5.0
# Far below the timeout, far above the registry's batching of news.
FAST_SECONDS = 1.0
# Long enough for a started waiter to block on news.
SETTLE_SECONDS = 0.1


class Stream:
    """A live stream whose verdict the test sets, as a stream's ``StreamReport`` does."""

    mode = "sotw"
    peer = "ipv4:127.0.0.1:10000"

    def __init__(self) -> None:
        self.verdict = Sync(False, "has not ACKed cds v1 yet")

    def sync(self) -> Sync:
        return self.verdict

    def type_views(self) -> list[TypeView]:
        return []


async def _nack_with_two_waiters(second_starts_after_nack: bool) -> list[WaitResult]:
    """One node NACKs the current config while two waiters wait; what each returned
    within ``FAST_SECONDS`` (the test fails if either is still waiting then)."""
    registry = NodeRegistry()
    stream = Stream()
    record = registry.connect("envoy-0", "", stream)
    registry.notify()  # a new snapshot, which the node has not ACKed
    waiters = [asyncio.create_task(registry.wait_for_sync(TIMEOUT_SECONDS))]
    if not second_starts_after_nack:
        waiters.append(asyncio.create_task(registry.wait_for_sync(TIMEOUT_SECONDS)))
    await asyncio.sleep(SETTLE_SECONDS)
    stream.verdict = Sync(False, "NACKed cds v1: bad cluster", rejected=True)
    registry.nack(record, CLUSTER, "v1", "bad cluster")
    if second_starts_after_nack:
        # As server.py's summary waiter for the next publish, or a second operator's
        # --wait, does: it starts before the first waiter has looked at the NACK.
        waiters.append(asyncio.create_task(registry.wait_for_sync(TIMEOUT_SECONDS)))
    _done, pending = await asyncio.wait(waiters, timeout=FAST_SECONDS)
    for waiter in pending:
        waiter.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert not pending, f"{len(pending)} of 2 waiters missed the NACK and wait for the timeout"
    return [waiter.result() for waiter in waiters]


@pytest.mark.parametrize(
    "second_starts_after_nack", [False, True], ids=["both-wait-first", "second-starts-after"]
)
def test_a_nack_ends_every_concurrent_wait_at_once(second_starts_after_nack: bool) -> None:
    """Neither waiter hides the NACK from the other: both fail fast, naming the node."""
    results = asyncio.run(_nack_with_two_waiters(second_starts_after_nack))
    for result in results:
        assert not result.done
        assert result.seconds < FAST_SECONDS
        assert [(r.node_id, s.rejected) for r, s in result.lagging] == [("envoy-0", True)]


def test_a_nack_of_an_older_config_does_not_end_a_wait() -> None:
    """A NACK that leaves no node rejecting the current config is news, not failure."""

    async def scenario() -> WaitResult:
        registry = NodeRegistry()
        stream = Stream()
        record = registry.connect("envoy-0", "", stream)
        registry.notify()
        waiter = asyncio.create_task(registry.wait_for_sync(TIMEOUT_SECONDS))
        await asyncio.sleep(SETTLE_SECONDS)
        registry.nack(record, CLUSTER, "v0", "an old config, already replaced")
        await asyncio.sleep(SETTLE_SECONDS)
        assert not waiter.done()
        stream.verdict = Sync(True)
        registry.set_synced(record, stream, True)
        return await asyncio.wait_for(waiter, FAST_SECONDS)

    result = asyncio.run(scenario())
    assert result.done and result.envoys == 1
