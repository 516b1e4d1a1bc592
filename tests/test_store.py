"""Both stores (SQLite and PostgreSQL): round trips, atomic refusals, serialised
writers, the change sequence, export/import, migrations."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support.stores import Opener, opener
from tests.support.worlds import context
from xds_server.errors import (
    InvalidRequest,
    PreconditionFailed,
    Replayed,
    RevisionConflict,
    StateError,
)
from xds_server.model import operations as ops
from xds_server.model.names import parse_endpoint, parse_mirrors
from xds_server.model.state import World
from xds_server.store import rows, schema
from xds_server.store.base import StateDump, Store, WriteRequest
from xds_server.store.postgres import PostgresStore
from xds_server.store.sqlite import SCHEMA_VERSION, SqliteStore

CTX = context()


def _apply(**kwargs: Any) -> Any:
    kwargs.setdefault("service", "default")
    kwargs.setdefault("endpoints", [parse_endpoint("10.0.0.1:80")])
    return lambda world, _history: ops.apply_deployment(world, CTX, **kwargs)


def _set(tags: list[tuple[str, int]], mirror: str = "", **kwargs: Any) -> Any:
    mirrors = parse_mirrors(mirror) if mirror else ()
    return lambda world, _history: ops.set_traffic(
        world, CTX, service="default", weights=tags, mirrors=mirrors, **kwargs
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    return opener(request, tmp_path)


async def _populated(opener: Opener) -> Store:
    return await _populate(await opener())


async def _populate(store: Store) -> Store:
    """Four changes: two deployments, a canary with a mirror, a second service."""
    await store.transact(_apply(deployment_tag="blue", labels=[("version", "v1")]))
    await store.transact(
        _apply(
            bluegreen=True, endpoints=[parse_endpoint("[::1]:9000"), parse_endpoint("app.local:80")]
        )
    )
    await store.transact(
        _set([("blue", 90), ("green", 10)], "green=2.5", sticky_header="x-user-id")
    )
    await store.transact(
        lambda world, _h: ops.set_domains(world, service="shop", domains=["shop.example.com"])
    )
    return store


class TestStore:
    def test_round_trip(self, open_store: Opener) -> None:
        """What was written reads back identical, in a new process-like open too."""

        async def run() -> tuple[World, World, list[Any]]:
            store = await _populated(open_store)
            in_memory = await store.load()
            await store.close()
            reopened = await open_store()
            try:
                return in_memory, await reopened.load(), await reopened.history("default")
            finally:
                await reopened.close()

        before, after, history = asyncio.run(run())
        assert after == before
        assert after.services["default"].revision == 3
        assert after.services["default"].policy.weights == (("blue", 90), ("green", 10))
        # Routing settings are state too: the service's, and each history picture's.
        assert after.services["default"].routing.sticky_header == "x-user-id"
        assert history[0].after.routing.sticky_header == "x-user-id"
        assert history[0].before.routing.sticky_header is None
        assert after.services["shop"].domains == ("shop.example.com",)
        assert [e.revision for e in history] == [3, 2, 1]
        assert history[0].before.policy.weights == (("blue", 100), ("green", 0))

    def test_refused_change_writes_nothing(self, open_store: Opener) -> None:
        """A change function that raises leaves the file as it was."""

        async def run() -> tuple[World, World]:
            store = await _populated(open_store)
            before = await store.load()
            with pytest.raises(InvalidRequest):
                await store.transact(_set([("blue", 90), ("green", 20)]))
            after = await store.load()
            await store.close()
            return before, after

        before, after = asyncio.run(run())
        assert after == before

    def test_concurrent_writers_are_serialised(self, open_store: Opener) -> None:
        """Twenty racing compare-and-set writes: exactly one wins per revision."""

        async def run() -> tuple[int, int, World]:
            store = await _populated(open_store)
            results = await asyncio.gather(
                *(
                    store.transact(_set([("blue", 100 - i), ("green", i)], if_revision=3))
                    for i in range(20)
                ),
                return_exceptions=True,
            )
            world = await store.load()
            await store.close()
            wins = sum(not isinstance(r, Exception) for r in results)
            conflicts = sum(isinstance(r, RevisionConflict) for r in results)
            return wins, conflicts, world

        wins, conflicts, world = asyncio.run(run())
        assert (wins, conflicts) == (1, 19)
        assert world.services["default"].revision == 4

    def test_separate_openings_are_serialised(self, open_store: Opener, request: Any) -> None:
        """Like replicas: two stores on the same data, racing --if-revision writes. (A
        SQLite file has one owner: its second opening is refused, see TestSqliteFile.)"""
        if "sqlite" in request.node.callspec.id:
            with pytest.raises(StateError, match=r"in use by another xdsctl serve \(PID \d+"):
                asyncio.run(_second_opening(open_store))
            return

        async def run() -> tuple[list[Any], World, list[Any]]:
            first = await _populated(open_store)
            second = await open_store()
            results = await asyncio.gather(
                *(
                    (first, second)[i % 2].transact(
                        _set([("blue", 100 - i), ("green", i)], if_revision=3)
                    )
                    for i in range(20)
                ),
                return_exceptions=True,
            )
            world, history = await second.load(), await first.history("default")
            await first.close()
            await second.close()
            return results, world, history

        results, world, history = asyncio.run(run())
        assert sum(not isinstance(r, Exception) for r in results) == 1
        assert all(isinstance(r, RevisionConflict) for r in results if isinstance(r, Exception))
        assert world.services["default"].revision == 4
        assert [e.revision for e in history] == [4, 3, 2, 1]

    def test_every_change_bumps_the_sequence(self, open_store: Opener) -> None:
        """The sequence counts committed changes; a refused one leaves it."""

        async def run() -> tuple[int, int, int, int]:
            store = await open_store()
            empty = await store.sequence()
            store = await _populate(store)
            populated = await store.sequence()
            with pytest.raises(InvalidRequest):
                await store.transact(_set([("blue", 90), ("green", 20)]))
            _world, versioned = await store.load_versioned()
            await store.close()
            return empty, populated, await _reopened_sequence(open_store), versioned

        empty, populated, reopened, versioned = asyncio.run(run())
        assert (empty, populated, reopened, versioned) == (0, 4, 4, 4)

    def test_export_then_import_elsewhere(self, open_store: Opener, tmp_path: Path) -> None:
        """An export imported into an empty store of the other engine reads back identical."""

        async def run() -> tuple[StateDump, StateDump]:
            source = await _populated(open_store)
            dump = await source.export()
            await source.close()
            target = await SqliteStore.open(tmp_path / "copy.db")
            await target.import_state(dump, replace=False)
            copied = await target.export()
            await target.close()
            return dump, copied

        dump, copied = asyncio.run(run())
        assert copied == dump
        assert [e.revision for e in dump.history if e.service == "default"] == [3, 2, 1]

    def test_import_into_a_non_empty_store_needs_replace(self, open_store: Opener) -> None:
        """Importing over existing state is refused unless replacing; replacing is total."""

        async def run() -> tuple[World, StateDump]:
            store = await _populated(open_store)
            before = await store.load()
            other = StateDump(world=World(), history=())
            with pytest.raises(PreconditionFailed, match="--replace"):
                await store.import_state(other, replace=False)
            unchanged = await store.load()
            assert unchanged == before
            await store.import_state(other, replace=True)
            after = await store.export()
            await store.close()
            return before, after

        _before, after = asyncio.run(run())
        assert after == StateDump(world=World(), history=(), hooks=())

    def test_tag_moves_between_rows(self, open_store: Opener) -> None:
        """An in-place release moves a tag without tripping the unique index."""

        async def run() -> World:
            store = await _populated(open_store)
            await store.transact(_apply(deployment_tag="blue", in_place=True))
            await store.transact(lambda w, h: ops.rollback(w, h, CTX, service="default"))
            world = await store.load()
            await store.close()
            return world

        world = asyncio.run(run())
        assert [d.tag for d in world.deployments_of("default")] == ["blue", "green", None]

    def test_a_request_id_commits_once(self, open_store: Opener) -> None:
        """A write repeated with its request id is answered with the first reply and
        changes nothing (not even the sequence); the id with another request is refused."""

        def reply(change: Any) -> bytes:
            return f"revision {change.result.revision}".encode()

        request = WriteRequest("r-1", "asked", reply)

        async def run() -> tuple[bytes, World, World, int, int]:
            store = await open_store()
            first = await store.transact(_apply(deployment_tag="blue"), request=request)
            world, sequence = await store.load_versioned()
            with pytest.raises(Replayed) as replayed:
                await store.transact(_apply(deployment_tag="green"), request=request)
            again, again_sequence = await store.load_versioned()
            other = WriteRequest("r-1", "asked something else", reply)
            with pytest.raises(InvalidRequest, match="already used for a different request"):
                await store.transact(_apply(deployment_tag="green"), request=other)
            await store.close()
            assert first.result.revision == 1
            return replayed.value.reply, world, again, sequence, again_sequence

        reply_bytes, world, again, sequence, again_sequence = asyncio.run(run())
        assert reply_bytes == b"revision 1"
        assert again == world and again_sequence == sequence

    def test_request_ids_are_forgotten_after_a_day(self, open_store: Opener) -> None:
        async def run() -> None:
            store = await open_store()
            old = WriteRequest("r-old", "asked", lambda _result: b"old")
            day_ago = time.time() - rows.REQUEST_MEMORY_SECONDS - 1
            await store._write(lambda db: rows.remember_request(db, old, b"old", day_ago))
            with pytest.raises(Replayed):
                await store.transact(_apply(), request=old)
            new = WriteRequest("r-new", "x", lambda _r: b"")
            await store.transact(_apply(), request=new)
            # Onto the tag that now serves: an in-place release, asked for as such.
            await store.transact(_apply(in_place=True), request=old)  # forgotten: applied anew
            assert len((await store.load()).deployments) == 2
            await store.close()

        asyncio.run(run())

    def test_a_change_that_breaks_a_rule_is_not_written(self, open_store: Opener) -> None:
        """The store's last check: a change function whose world breaks a rule (a bug, or
        state edited by hand) is refused, and nothing is written."""

        def broken(world: World, _history: Any) -> ops.Change[None]:
            service = dataclasses.replace(world.services["default"], revision=-5)
            return ops.Change(
                World({**world.services, "default": service}, world.deployments), (), None
            )

        async def run() -> tuple[World, World]:
            store = await _populated(open_store)
            before = await store.load()
            with pytest.raises(PreconditionFailed, match="revision must be a whole number"):
                await store.transact(broken)
            after = await store.load()
            await store.close()
            return before, after

        before, after = asyncio.run(run())
        assert after == before


class TestSqliteFile:
    def test_schema_version_recorded(self, tmp_path: Path) -> None:
        """The file carries the schema version it was migrated to."""
        asyncio.run(_close(SqliteStore.open(tmp_path / "state.db")))
        connection = sqlite3.connect(tmp_path / "state.db")
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_refuses_a_newer_schema(self, tmp_path: Path) -> None:
        """A file from a newer version is refused, not corrupted."""
        connection = sqlite3.connect(tmp_path / "state.db")
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        connection.close()
        with pytest.raises(StateError, match="newer than this xds_server knows"):
            asyncio.run(_close(SqliteStore.open(tmp_path / "state.db")))

    def test_a_file_of_the_previous_schema_migrates_keeping_its_state(self, tmp_path: Path) -> None:
        """A state file written at schema 8 (before the board's own tables) opens: its
        services are kept and the new tables exist."""
        path = tmp_path / "state.db"
        connection = sqlite3.connect(path)
        for script in schema.MIGRATIONS[:8]:
            for statement in schema.statements(script):
                connection.execute(statement)
        connection.execute(
            "INSERT INTO services (name, revision, weights, mirrors) VALUES (?, ?, ?, ?)",
            ("shop", 0, "[]", "[]"),
        )
        connection.execute("PRAGMA user_version = 8")
        connection.commit()
        connection.close()

        async def run() -> World:
            store = await SqliteStore.open(path)
            try:
                return await store.load()
            finally:
                await store.close()

        assert set(asyncio.run(run()).services) == {"shop"}
        connection = sqlite3.connect(path)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        assert {"board_nodes", "board_parts"} <= tables
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    def test_refuses_a_file_that_is_not_a_database(self, tmp_path: Path) -> None:
        """A stray file at the state path gives a clear error."""
        (tmp_path / "state.db").write_bytes(b"not a database at all" * 100)
        with pytest.raises(StateError, match="is not usable"):
            asyncio.run(_close(SqliteStore.open(tmp_path / "state.db")))


async def _second_opening(opener: Opener) -> None:
    first = await opener()
    try:
        await _close(opener())
    finally:
        await first.close()


async def _close(opening: Any) -> None:
    store = await opening
    await store.close()


async def _reopened_sequence(opener: Opener) -> int:
    store = await opener()
    try:
        return await store.sequence()
    finally:
        await store.close()


def test_replicas_starting_together_migrate_once(postgres: Any) -> None:
    """Three stores opening one fresh database at once: all work, the schema is migrated
    once (the advisory lock), and they share one state."""
    url = postgres.database()

    async def run() -> tuple[list[int], World]:
        stores = await asyncio.gather(*(PostgresStore.open(url) for _ in range(3)))
        await _populate(stores[0])
        sequences = [await store.sequence() for store in stores]
        world = await stores[2].load()
        for store in stores:
            await store.close()
        return sequences, world

    sequences, world = asyncio.run(run())
    assert sequences == [4, 4, 4]
    assert world.services["default"].revision == 3
    with psycopg.connect(url) as connection:
        [(version,)] = connection.execute("SELECT version FROM schema_version").fetchall()
    assert version == SCHEMA_VERSION
