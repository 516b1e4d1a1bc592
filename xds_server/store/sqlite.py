"""The default store: one SQLite file in WAL mode.

Every change is one ``BEGIN IMMEDIATE`` transaction, so writers are serialised
(also across processes sharing the file) and a ``kill -9`` at any moment leaves
the last committed state intact. All database work runs on one worker thread
so that fsyncs never stall the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from xds_server.errors import StateError
from xds_server.store import rows
from xds_server.store.base import StoreHealth
from xds_server.store.rows import SCHEMA_VERSION
from xds_server.store.sql_store import SqlStore

T = TypeVar("T")


class _SqliteDb:
    """``rows.Db`` over a sqlite3 connection (``?`` placeholders are native)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[rows.Row]:
        return self._connection.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._connection.execute(sql, params)

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)


class SqliteStore(SqlStore):
    """A ``Store`` on one SQLite file; open it with ``SqliteStore.open``."""

    def __init__(self, connection: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._connection = connection
        self._executor = executor
        self.health = StoreHealth()  # a local file: it always answers

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

    async def _run(self, work: Callable[[rows.Db], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, work, _SqliteDb(self._connection))

    async def _read(self, query: Callable[[rows.Db], T]) -> T:
        """Run ``query`` in a read transaction: one consistent snapshot."""

        def work(db: rows.Db) -> T:
            with _transaction(self._connection, "BEGIN"):
                return query(db)

        return await self._run(work)

    async def _write(self, work: Callable[[rows.Db], T]) -> T:
        """Run ``work`` in one write transaction (serialised, also across processes)."""

        def transaction(db: rows.Db) -> T:
            with _transaction(self._connection, "BEGIN IMMEDIATE"):
                return work(db)

        return await self._run(transaction)

    async def close(self) -> None:
        await self._run(lambda _db: self._connection.close())
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
        rows.migrate(_SqliteDb(connection), version, f"state file {path}")
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
