"""The follower publishes each committed world once, forward only, whatever order the
notices come in; the first world is checked before anything is served."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from xds_server.auth.tokens import TokenRecord
from xds_server.errors import StateError, StoreUnavailable
from xds_server.model.state import (
    Deployment,
    DeploymentState,
    Endpoint,
    Service,
    TrafficPolicy,
    World,
)
from xds_server.replication.follower import StateFollower
from xds_server.store.committed import WorldUpdate


def _good(revision: int) -> World:
    """A world that keeps every rule; ``revision`` tells one publication from another."""
    policy = TrafficPolicy(weights=(("blue", 100),))
    deployment = Deployment(
        id="c" * 25,
        service="s",
        created_at="t",
        endpoints=(Endpoint("10.0.0.1", 80),),
        tag="blue",
        state=DeploymentState.ACTIVE,
    )
    return World(
        services={"s": Service("s", policy=policy, revision=revision)},
        deployments={deployment.id: deployment},
    )


# A serving tag held by no deployment: a world no server may serve.
BROKEN = World(
    services={"s": Service("s", policy=TrafficPolicy(weights=(("blue", 100),)), revision=1)}
)


class ScriptedStore:
    """Answers ``updates_since`` from a script of updates, one per call."""

    where = "scripted store"

    def __init__(self, updates: list[WorldUpdate | Exception]) -> None:
        self._updates: Iterator[WorldUpdate | Exception] = iter(updates)
        self.asked: list[tuple[int, bool]] = []
        self.token_reads = 0

    async def updates_since(self, sequence: int, *, look: bool = True) -> WorldUpdate:
        self.asked.append((sequence, look))
        update = next(self._updates)
        if isinstance(update, Exception):
            raise update
        return update

    async def tokens(self) -> tuple[TokenRecord, ...]:
        self.token_reads += 1
        return ()


def _follower(store: ScriptedStore) -> tuple[StateFollower, list[tuple[int, object]]]:
    """A follower of ``store`` and what it published: (the world's revision, services)."""
    published: list[tuple[int, object]] = []

    async def publish(world: World, services: frozenset[str] | None) -> None:
        published.append((world.services["s"].revision, services))

    return StateFollower(store, publish), published  # type: ignore[arg-type]


def test_worlds_are_published_forward_only() -> None:
    """A notice that brings an older or the same sequence publishes nothing; the first
    publication covers every service, later ones only the services named."""
    store = ScriptedStore(
        [
            WorldUpdate(_good(3), 3, None, True),
            WorldUpdate(_good(5), 5, frozenset({"s"}), False),
            WorldUpdate(_good(4), 4, frozenset({"s"}), False),  # late: already past it
            WorldUpdate(_good(5), 5, frozenset(), False),  # nothing new
            WorldUpdate(_good(7), 7, frozenset({"s"}), True),
        ]
    )
    follower, published = _follower(store)

    async def run() -> None:
        for _ in range(5):
            await follower.refresh()

    asyncio.run(run())
    assert published == [(3, None), (5, frozenset({"s"})), (7, frozenset({"s"}))]
    assert [asked for asked, _ in store.asked] == [-1, 3, 5, 5, 5]
    assert follower.sequence == 7
    assert store.token_reads == 2  # at start-up, and when a change touched tokens


def test_a_commit_made_here_is_taken_without_asking_the_database() -> None:
    store = ScriptedStore(
        [WorldUpdate(_good(1), 1, None, True), WorldUpdate(_good(2), 2, None, False)]
    )
    follower, _ = _follower(store)

    async def run() -> None:
        await follower.catch_up()
        await follower.after_commit()

    asyncio.run(run())
    assert [look for _, look in store.asked] == [True, False]


def test_a_broken_first_world_is_refused_and_nothing_is_published() -> None:
    store = ScriptedStore([WorldUpdate(BROKEN, 1, None, True)])
    follower, published = _follower(store)
    with pytest.raises(StateError, match="this server will not serve it"):
        asyncio.run(follower.refresh())
    assert published == [] and follower.world is None


def test_a_failed_refresh_keeps_what_was_published_and_the_next_one_catches_up() -> None:
    """A store that fails mid-way (after a commit answered, on a notice) is logged, not
    raised; the published world stays, and the next notice brings it forward."""
    store = ScriptedStore(
        [
            WorldUpdate(_good(1), 1, None, True),
            StoreUnavailable("the database is away"),
            WorldUpdate(_good(4), 4, frozenset({"s"}), False),
        ]
    )
    follower, published = _follower(store)

    async def run() -> None:
        await follower.catch_up()
        await follower.catch_up()
        assert follower.sequence == 1
        await follower.catch_up()

    asyncio.run(run())
    assert published == [(1, None), (4, frozenset({"s"}))]


def test_concurrent_refreshes_run_one_at_a_time() -> None:
    """Two notices at once: each asks from the sequence the other left, never both
    from the same one (so the same world is not published twice)."""
    store = ScriptedStore(
        [WorldUpdate(_good(1), 1, None, True), WorldUpdate(_good(2), 2, None, False)]
    )
    follower, published = _follower(store)

    async def run() -> None:
        await asyncio.gather(follower.refresh(), follower.refresh())

    asyncio.run(run())
    assert [asked for asked, _ in store.asked] == [-1, 1]
    assert [sequence for sequence, _ in published] == [1, 2]
