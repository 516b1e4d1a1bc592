"""The outbox on both engines: events written with their change (and only then),
queues that keep commit order per hook and service, leases that give each delivery to
one claimer, and the bounds on what is kept."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.stores import Opener, opener
from tests.support.worlds import context
from xds_server.errors import InvalidRequest, PreconditionFailed
from xds_server.model import operations as ops
from xds_server.model.hooks import OMITTED_SECRET, new_hook
from xds_server.model.names import parse_endpoint
from xds_server.model.state import World
from xds_server.store import outbox
from xds_server.store.base import Store
from xds_server.store.outbox import DELIVERED, FAILED, PENDING, Outcome
from xds_server.store.sqlite import SqliteStore

CTX = context(actor="alice")


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    return opener(request, tmp_path)


def _hook(name: str, events: tuple[str, ...] = ("*",), **kwargs: Any) -> Any:
    return new_hook(
        name=name,
        url=kwargs.pop("url", "http://127.0.0.1:9/hook"),
        command=(),
        secret=kwargs.pop("secret", ""),
        events=events,
        timeout_s=1.0,
        created_at="2026-01-01T00:00:00Z",
        created_by="alice",
    )


def _apply(service: str, **kwargs: Any) -> Any:
    return lambda world, _h: ops.apply_deployment(
        world, CTX, service=service, endpoints=[parse_endpoint("10.0.0.1:80")], **kwargs
    )


def _set(service: str, tags: list[tuple[str, int]]) -> Any:
    return lambda world, _h: ops.set_traffic(world, CTX, service=service, weights=tags)


class Clock:
    """The outbox's clock, moved by the test (leases, retries, the 24 h limit)."""

    def __init__(self, store: Store) -> None:
        self.now = time.time()
        store.outbox.clock = lambda _db: self.now


async def _claim_all(store: Store, replica: str = "r1") -> list[Any]:
    return await store.outbox.claim(replica, 100, 10.0, {}, 100)


async def _ok(store: Store, claimed: Any, replica: str = "r1") -> str:
    return await store.outbox.finish(claimed, Outcome(True, "200"), 0.0, replica)


def test_events_commit_with_their_change_and_only_then(open_store: Opener) -> None:
    async def run() -> None:
        store = await open_store()
        try:
            await store.edit_hooks(lambda hooks: (*hooks, _hook("all")))
            await store.transact(_apply("shop", deployment_tag="blue"), actor="alice")
            with pytest.raises(InvalidRequest):
                await store.transact(_set("shop", [("blue", 90)]))
            claims = await _claim_all(store)
            assert [c.event_type for c in claims] == ["service.changed"]  # queue heads only
            assert claims[0].hook.name == "all" and claims[0].attempt == 1
        finally:
            await store.close()

    asyncio.run(run())


def test_queues_keep_commit_order_per_hook_and_service(open_store: Opener) -> None:
    """Only a queue's head is due; a failed head holds the rest of its queue, not others."""

    async def run() -> None:
        store = await open_store()
        clock = Clock(store)
        try:
            await store.edit_hooks(
                lambda hooks: (*hooks, _hook("a", ("traffic.*",)), _hook("b", ("traffic.*",)))
            )
            for service in ("shop", "cart"):
                await store.transact(_apply(service, deployment_tag="blue"))
                await store.transact(_apply(service, deployment_tag="green"))
            heads = await _claim_all(store)
            assert sorted((c.hook.name, c.body.count(b'"shop"') > 0) for c in heads) == [
                ("a", False),
                ("a", True),
                ("b", False),
                ("b", True),
            ]
            # Claimed: leased, so nobody (this replica or another) gets them again.
            assert await _claim_all(store, "r2") == []
            shop_a = next(c for c in heads if c.hook.name == "a" and b'"shop"' in c.body)
            failed_at = clock.now
            state = await store.outbox.finish(shop_a, Outcome(False, "500"), 60.0, "r1")
            assert state == PENDING
            for claimed in heads:
                if claimed is not shop_a:
                    assert await _ok(store, claimed) == DELIVERED
            later = await _claim_all(store, "r2")
            # a/shop waits for its head's retry; the three others move to their next event.
            assert sorted((c.hook.name, b'"shop"' in c.body) for c in later) == [
                ("a", False),
                ("b", False),
                ("b", True),
            ]
            # Past its retry time (the others' leases ran out too: they come again).
            clock.now += 61
            retried = [
                c
                for c in await _claim_all(store, "r2")
                if c.hook.name == "a" and b'"shop"' in c.body
            ]
            assert [(c.event_id, c.attempt) for c in retried] == [(shop_a.event_id, 2)]
            assert retried[0].first_failure == failed_at
        finally:
            await store.close()

    asyncio.run(run())


def test_a_lease_that_runs_out_is_claimed_again_and_the_stale_finish_is_ignored(
    open_store: Opener,
) -> None:
    async def run() -> None:
        store = await open_store()
        try:
            await store.edit_hooks(lambda hooks: (*hooks, _hook("a", ("deployment.applied",))))
            await store.transact(_apply("shop"))
            clock = Clock(store)
            first = await store.outbox.claim("r1", 10, 10.0, {}, 4)
            assert len(first) == 1
            clock.now += 5
            assert await store.outbox.claim("r2", 10, 10.0, {}, 4) == []
            # r1 died: its lease (timeout 1 s + 10 s) runs out.
            clock.now += 7
            second = await store.outbox.claim("r2", 10, 10.0, {}, 4)
            assert [c.event_id for c in second] == [first[0].event_id]
            await _ok(store, first[0])
            # r1's late finish changed nothing: the delivery is r2's, still leased.
            clock.now += 1
            assert await store.outbox.claim("r3", 10, 10.0, {}, 4) == []
            await _ok(store, second[0], "r2")
            assert (await store.outbox.queues()) == {}
            attempts = await store.outbox.attempts("a", 10)
            assert [a.replica for a in attempts] == ["r2", "r1"]
        finally:
            await store.close()

    asyncio.run(run())


def test_room_per_hook_bounds_a_claim(open_store: Opener) -> None:
    async def run() -> None:
        store = await open_store()
        try:
            await store.edit_hooks(lambda hooks: (*hooks, _hook("a", ("deployment.applied",))))
            for service in ("s1", "s2", "s3", "s4"):
                await store.transact(_apply(service))
            claims = await store.outbox.claim("r1", 10, 10.0, {"a": 1}, 4)
            assert len(claims) == 1
            assert len(await store.outbox.claim("r1", 10, 10.0, {}, 2)) == 2
            assert await store.outbox.claim("r1", 10, 10.0, {"a": 0}, 4) == []
        finally:
            await store.close()

    asyncio.run(run())


def test_failed_deliveries_and_scale_confirmations(open_store: Opener) -> None:
    async def run() -> None:
        store = await open_store()
        try:
            await store.edit_hooks(lambda hooks: (*hooks, _hook("scaler", ("deployment.scale",))))
            await store.transact(_apply("shop", deployment_tag="blue"))
            world = await store.load()
            blue = next(iter(world.deployments))
            assert await store.outbox.scale_confirmations([blue]) == {blue: "pending"}
            clock = Clock(store)
            claimed = (await _claim_all(store))[0]
            failed = Outcome(False, "exit 1")
            assert await store.outbox.finish(claimed, failed, 5.0, "r1") == PENDING
            # Failing for 24 h: given up, and the next of its queue goes on.
            clock.now += 24 * 3600
            again = (await _claim_all(store))[0]
            assert again.event_id == claimed.event_id and again.attempt == 2
            assert await store.outbox.finish(again, failed, 5.0, "r1") == FAILED
            assert await store.outbox.scale_confirmations([blue]) == {blue: "failed"}
            assert (await store.outbox.queues())["scaler"].failed == 1
            await store.edit_hooks(lambda hooks: ())
            await store.transact(_apply("shop", deployment_tag="green"))
            green = next(i for i in (await store.load()).deployments if i != blue)
            assert (await store.outbox.scale_confirmations([green]))[green] == "no-hook"
        finally:
            await store.close()

    asyncio.run(run())


def test_prune_keeps_what_is_pending_and_each_deployments_last_scale_event(
    open_store: Opener,
) -> None:
    async def run() -> None:
        store = await open_store()
        try:
            await store.edit_hooks(lambda hooks: (*hooks, _hook("a")))
            await store.transact(_apply("shop", deployment_tag="blue"))
            blue = next(iter((await store.load()).deployments))
            delivered = 0
            while claims := await _claim_all(store):
                for claimed in claims:
                    await _ok(store, claimed)
                    delivered += 1
            assert delivered == 4  # service, deployment, traffic, scale
            await store.transact(_apply("shop", deployment_tag="green"))
            Clock(store).now += 8 * 24 * 3600  # everything is older than the horizon
            await store.outbox.prune()
            # Kept: blue's last scale event (and its confirmation), green's pending ones.
            assert await store.outbox.scale_confirmations([blue]) == {blue: "confirmed"}
            remaining = await _claim_all(store)
            assert [c.event_type for c in remaining] == ["deployment.applied"]
            assert await store.outbox.attempts("a", 10) == []
        finally:
            await store.close()

    asyncio.run(run())


def test_imported_hooks_keep_the_stores_secret_or_are_refused(open_store: Opener) -> None:
    async def run() -> None:
        store = await open_store()
        try:
            await store.edit_hooks(lambda hooks: (*hooks, _hook("signed", secret="k1")))
            dump = await store.export()
            assert dump.hooks is not None and dump.hooks[0].secret == "k1"
            omitted = dataclasses.replace(
                dump, hooks=(dataclasses.replace(dump.hooks[0], secret=OMITTED_SECRET),)
            )
            await store.import_state(omitted, replace=True)
            assert (await store.outbox.hooks())[0].secret == "k1"
            await store.edit_hooks(lambda hooks: ())
            with pytest.raises(PreconditionFailed, match="--include-secrets"):
                await store.import_state(omitted, replace=True)
            assert await store.outbox.hooks() == ()
        finally:
            await store.close()

    asyncio.run(run())


def test_the_attempts_kept_per_hook_are_bounded(tmp_path: Path) -> None:
    async def run() -> None:
        store = await SqliteStore.open(tmp_path / "state.db")
        try:
            await store.edit_hooks(lambda hooks: (*hooks, _hook("a")))
            claimed = outbox.Claim(_hook("a"), 0, "", "e", "hook.test", b"{}", 1, None, "")
            clock = Clock(store)
            start = clock.now
            for _ in range(outbox.MAX_ATTEMPTS_KEPT + 30):
                clock.now += 1
                await store.outbox.record_attempt(claimed, Outcome(True, "200"), DELIVERED, "r1")
            await store.outbox.prune()
            kept = await store.outbox.attempts("a", 10_000)
            assert len(kept) == outbox.MAX_ATTEMPTS_KEPT
            assert kept[0].at == start + outbox.MAX_ATTEMPTS_KEPT + 30
        finally:
            await store.close()

    asyncio.run(run())


def test_a_busy_hook_takes_no_other_hooks_turn(open_store: Opener) -> None:
    async def run() -> None:
        store = await open_store()
        try:
            await store.edit_hooks(
                lambda hooks: (*hooks, _hook("a", ("deployment.applied",)), _hook("b", ("*",)))
            )
            for i in range(10):
                await store.transact(_apply(f"s{i}"))
            # a has no room (4 in flight); b gets its turn whatever a has due.
            claims = await store.outbox.claim("r1", 2, 10.0, {"a": 0}, 4)
            assert [c.hook.name for c in claims] == ["b", "b"]
        finally:
            await store.close()

    asyncio.run(run())


def test_a_hook_changed_by_an_import_keeps_its_queue(open_store: Opener) -> None:
    async def run() -> None:
        store = await open_store()
        try:
            await store.edit_hooks(lambda hooks: (*hooks, _hook("a", ("deployment.applied",))))
            await store.transact(_apply("shop"))
            dump = await store.export()
            assert dump.hooks is not None
            slower = dataclasses.replace(dump.hooks[0], timeout_s=30.0)
            await store.import_state(dataclasses.replace(dump, hooks=(slower,)), replace=True)
            (claimed,) = [
                c for c in await _claim_all(store) if c.event_type == "deployment.applied"
            ]
            assert claimed.hook.timeout_s == 30.0
        finally:
            await store.close()

    asyncio.run(run())


def test_an_import_tells_the_stores_hooks_what_it_changed(open_store: Opener) -> None:
    """Replacing a state that held `shop` with one that does not: shop's deployment stops
    and goes, then shop; the document's own hooks hear nothing of the import."""

    async def run() -> None:
        store = await open_store()
        try:
            await store.transact(_apply("shop"))
            await store.edit_hooks(lambda hooks: (*hooks, _hook("held")))
            empty = dataclasses.replace(await store.export(), world=World(), history=(), hooks=None)
            await store.import_state(empty, replace=True, actor="alice")
            types = []
            while claims := await _claim_all(store):
                types += [(c.event_type, json.loads(c.body)["actor"]) for c in claims]
                for claimed in claims:
                    await _ok(store, claimed)
            assert types == [
                ("deployment.scale", "alice"),
                ("deployment.deleted", "alice"),
                ("service.changed", "alice"),
            ]
        finally:
            await store.close()

    asyncio.run(run())
