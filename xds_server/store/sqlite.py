"""The default store: one SQLite file in WAL mode.

Every change is one ``BEGIN IMMEDIATE`` transaction, so writers are serialised
(also across processes sharing the file) and a ``kill -9`` at any moment leaves
the last committed state intact. All database work runs on one worker thread
so that fsyncs never stall the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from xds_server.errors import StateError
from xds_server.model.operations import Change
from xds_server.model.state import (
    Deployment,
    DeploymentState,
    HistoryEntry,
    Service,
    TrafficPolicy,
    World,
)
from xds_server.store import codec
from xds_server.store.base import ChangeFunction

T = TypeVar("T")

log = structlog.get_logger(__name__)

# Migration N brings the schema from version N to N + 1. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE services (
        name     TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        weights  TEXT NOT NULL,
        mirrors  TEXT NOT NULL
    );
    CREATE TABLE domains (
        domain   TEXT PRIMARY KEY,
        service  TEXT NOT NULL REFERENCES services(name),
        position INTEGER NOT NULL
    );
    CREATE TABLE deployments (
        id         TEXT PRIMARY KEY,
        service    TEXT NOT NULL REFERENCES services(name),
        created_at TEXT NOT NULL,
        endpoints  TEXT NOT NULL,
        labels     TEXT NOT NULL,
        tag        TEXT,
        state      TEXT NOT NULL CHECK (state IN ('active', 'scaled_down'))
    );
    CREATE UNIQUE INDEX deployments_service_tag ON deployments (service, tag)
        WHERE tag IS NOT NULL;
    CREATE TABLE history (
        service  TEXT NOT NULL REFERENCES services(name),
        revision INTEGER NOT NULL,
        time     TEXT NOT NULL,
        actor    TEXT NOT NULL,
        command  TEXT NOT NULL,
        before   TEXT NOT NULL,
        after    TEXT NOT NULL,
        PRIMARY KEY (service, revision)
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class _ConnectionHistory:
    """Reads history inside the running transaction (for rollback)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def entry(self, service: str, revision: int) -> HistoryEntry | None:
        row = self._connection.execute(
            "SELECT * FROM history WHERE service = ? AND revision = ?", (service, revision)
        ).fetchone()
        return _history_entry(row) if row else None


def _history_entry(row: sqlite3.Row) -> HistoryEntry:
    return HistoryEntry(
        service=row["service"],
        revision=row["revision"],
        time=row["time"],
        actor=row["actor"],
        command=row["command"],
        before=codec.decode_picture(row["before"]),
        after=codec.decode_picture(row["after"]),
    )


class SqliteStore:
    """A ``Store`` on one SQLite file; open it with ``SqliteStore.open``."""

    def __init__(self, connection: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._executor = executor

    @classmethod
    async def open(cls, path: str | Path) -> SqliteStore:
        """Open (creating if needed) and migrate the state file."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            connection = await loop.run_in_executor(executor, _connect, str(path))
        except BaseException:
            executor.shutdown()
            raise
        return cls(connection, executor)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, work, self._connection)

    async def load(self) -> World:
        return await self._run(_read(_load_world))

    async def transact(self, change: ChangeFunction[T]) -> Change[T]:
        def work(connection: sqlite3.Connection) -> Change[T]:
            with _transaction(connection, "BEGIN IMMEDIATE"):
                before = _load_world(connection)
                result = change(before, _ConnectionHistory(connection))
                _write_change(connection, before, result)
            return result

        return await self._run(work)

    async def history(self, service: str, limit: int | None = None) -> list[HistoryEntry]:
        def query(connection: sqlite3.Connection) -> list[HistoryEntry]:
            rows = connection.execute(
                "SELECT * FROM history WHERE service = ? ORDER BY revision DESC LIMIT ?",
                (service, -1 if limit is None else limit),
            ).fetchall()
            return [_history_entry(row) for row in rows]

        return await self._run(_read(query))

    async def close(self) -> None:
        await self._run(lambda connection: connection.close())
        self._executor.shutdown()


def _connect(path: str) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    try:
        if connection.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise StateError(f"state file {path}: SQLite refused WAL mode")
        # FULL: a committed change survives power loss too, not only a crash.
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA busy_timeout=10000")
        _migrate(connection, path)
    except sqlite3.DatabaseError as error:
        connection.close()
        raise StateError(f"state file {path} is not usable: {error}") from error
    except BaseException:
        connection.close()
        raise
    return connection


def _migrate(connection: sqlite3.Connection, path: str) -> None:
    with _transaction(connection, "BEGIN IMMEDIATE"):
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state file {path} has schema version {version}, newer than this "
                f"xds_server knows ({SCHEMA_VERSION}): run the newer version"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step].split(";"):
                if statement.strip():
                    connection.execute(statement)
            log.info("store.migrated", path=path, schema_version=step + 1)
        # PRAGMA takes no parameters; SCHEMA_VERSION is our own integer.
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class _transaction:
    """``with`` block that commits on success and rolls back on any error."""

    def __init__(self, connection: sqlite3.Connection, begin: str) -> None:
        self._connection = connection
        self._begin = begin

    def __enter__(self) -> None:
        self._connection.execute(self._begin)

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self._connection.execute("COMMIT" if kind is None else "ROLLBACK")


def _read(query: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """Wrap a query in a read transaction so it sees one consistent snapshot."""

    def work(connection: sqlite3.Connection) -> T:
        with _transaction(connection, "BEGIN"):
            return query(connection)

    return work


def _load_world(connection: sqlite3.Connection) -> World:
    domains: dict[str, list[str]] = {}
    for row in connection.execute("SELECT domain, service FROM domains ORDER BY position"):
        domains.setdefault(row["service"], []).append(row["domain"])
    services = {
        row["name"]: Service(
            name=row["name"],
            domains=tuple(domains.get(row["name"], ())),
            revision=row["revision"],
            policy=TrafficPolicy(
                weights=codec.decode_pairs(row["weights"]),
                mirrors=codec.decode_mirrors(row["mirrors"]),
            ),
        )
        for row in connection.execute("SELECT * FROM services")
    }
    deployments = {
        row["id"]: Deployment(
            id=row["id"],
            service=row["service"],
            created_at=row["created_at"],
            endpoints=codec.decode_endpoints(row["endpoints"]),
            labels=codec.decode_pairs(row["labels"]),
            tag=row["tag"],
            state=DeploymentState(row["state"]),
        )
        for row in connection.execute("SELECT * FROM deployments")
    }
    return World(services=services, deployments=deployments)


def _write_change(connection: sqlite3.Connection, before: World, change: Change[T]) -> None:
    """Persist what differs between ``before`` and ``change.world``, plus history.

    Changed rows are deleted before any is inserted, so a tag or a domain that
    moves between two rows never trips a unique index half way.
    """
    after = change.world
    changed_services = [s for n, s in after.services.items() if before.services.get(n) != s]
    changed_deployments = [
        d for i, d in after.deployments.items() if before.deployments.get(i) != d
    ]
    removed_deployments = [i for i in before.deployments if i not in after.deployments]

    for service in changed_services:
        connection.execute("DELETE FROM domains WHERE service = ?", (service.name,))
    for deployment_id in [d.id for d in changed_deployments] + removed_deployments:
        connection.execute("DELETE FROM deployments WHERE id = ?", (deployment_id,))

    for service in changed_services:
        connection.execute(
            "INSERT INTO services (name, revision, weights, mirrors) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, "
            "weights = excluded.weights, mirrors = excluded.mirrors",
            (
                service.name,
                service.revision,
                codec.encode_pairs(service.policy.weights),
                codec.encode_mirrors(service.policy.mirrors),
            ),
        )
        connection.executemany(
            "INSERT INTO domains (domain, service, position) VALUES (?, ?, ?)",
            [(domain, service.name, i) for i, domain in enumerate(service.domains)],
        )
    connection.executemany(
        "INSERT INTO deployments (id, service, created_at, endpoints, labels, tag, state) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                d.id,
                d.service,
                d.created_at,
                codec.encode_endpoints(d.endpoints),
                codec.encode_pairs(d.labels),
                d.tag,
                d.state.value,
            )
            for d in changed_deployments
        ],
    )
    connection.executemany(
        "INSERT INTO history (service, revision, time, actor, command, before, after) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.service,
                e.revision,
                e.time,
                e.actor,
                e.command,
                codec.encode_picture(e.before),
                codec.encode_picture(e.after),
            )
            for e in change.history
        ],
    )
