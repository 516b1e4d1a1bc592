"""The HA store: PostgreSQL, shared by several control-plane replicas.

The statements are SQLite's (``xds_server.store.rows``); what differs is how
writers are serialised and how replicas hear about each other's changes:

- every write transaction starts by bumping the one-row change sequence, whose
  row lock serialises writers on every replica: each change function sees the
  latest committed world, so no update is lost and ``--if-revision`` holds
  across replicas; a UNIQUE domain backs the model's own domain check;
- the same transaction sends ``NOTIFY xds_server_change`` (delivered at commit);
  ``follow`` listens, and after every notice, every reconnect and every
  ``resync_seconds`` lets the replica compare the sequence with what it loaded.

Database work runs on worker threads with psycopg's connection pool, so the
event loop never waits on the network. A pool that cannot hand out a healthy
connection within ``pool_timeout`` seconds raises ``StoreUnavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool
import structlog
from psycopg.rows import dict_row

from xds_server.errors import StateError, StoreUnavailable
from xds_server.store import rows
from xds_server.store.base import StoreHealth
from xds_server.store.rows import SCHEMA_VERSION
from xds_server.store.sql_store import SqlStore

T = TypeVar("T")

log = structlog.get_logger(__name__)

CHANNEL = "xds_server_change"
# pg_advisory_xact_lock key for migrations: replicas starting together migrate once.
MIGRATION_LOCK = 0x7864_7321
POOL_SIZE = 4
CONNECT_TIMEOUT_S = 2
# libpq TCP keepalives: a listening connection to a vanished host fails in
# seconds, not after the kernel's two hours.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2}


def redact(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, parts.fragment))


class _PgDb:
    """``rows.Db`` over a psycopg connection: ``?`` placeholders become ``%s``."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[rows.Row]:
        return self._connection.execute(_pg(sql), params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._connection.execute(_pg(sql), params)

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        batch = list(rows)
        if batch:
            with self._connection.cursor() as cursor:
                cursor.executemany(_pg(sql), batch)


def _pg(sql: str) -> str:
    return sql.replace("?", "%s")


class PostgresStore(SqlStore):
    """A ``Store`` on a PostgreSQL database; open it with ``PostgresStore.open``."""

    def __init__(
        self, url: str, pool: psycopg_pool.ConnectionPool, executor: ThreadPoolExecutor
    ) -> None:
        self._url = url
        self._pool = pool
        self._executor = executor
        self.health = StoreHealth()

    @classmethod
    async def open(cls, url: str, pool_timeout: float = 2.0) -> PostgresStore:
        """Connect, and migrate the schema once even if replicas start together."""
        pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            timeout=pool_timeout,
            check=psycopg_pool.ConnectionPool.check_connection,
            kwargs={"row_factory": dict_row, "connect_timeout": CONNECT_TIMEOUT_S, **KEEPALIVES},
            name="xds-store",
        )
        executor = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="pg-store")
        loop = asyncio.get_running_loop()

        def start() -> None:
            pool.open(wait=True, timeout=10)
            with pool.connection() as connection, connection.transaction():
                _migrate(_PgDb(connection), redact(url))

        try:
            await loop.run_in_executor(executor, start)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            await loop.run_in_executor(executor, pool.close)
            executor.shutdown()
            raise StateError(f"database {redact(url)} is not usable: {error}") from error
        except BaseException:
            await loop.run_in_executor(executor, pool.close)
            executor.shutdown()
            raise
        return cls(url, pool, executor)

    async def _run(self, work: Callable[[rows.Db], T], begin: str = "") -> T:
        """Run ``work`` in one transaction on a pooled connection, off the event loop."""

        def transaction() -> T:
            try:
                with self._pool.connection() as connection, connection.transaction():
                    if begin:
                        connection.execute(begin)
                    result = work(_PgDb(connection))
            except psycopg_pool.PoolTimeout as error:
                raise self._unavailable(f"no connection within {self._pool.timeout:g}s") from error
            except psycopg.OperationalError as error:
                raise self._unavailable(str(error)) from error
            self.health.answered()
            return result

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, transaction)

    def _unavailable(self, why: str) -> StoreUnavailable:
        """The error for a failed call, recorded in the store's health."""
        error = StoreUnavailable(
            f"database unavailable ({redact(self._url)}): {why}; nothing was changed, "
            "retry when it is back"
        )
        self.health.lost(str(error))
        return error

    async def _read(self, query: Callable[[rows.Db], T]) -> T:
        return await self._run(query, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")

    async def _write(self, work: Callable[[rows.Db], T]) -> T:
        return await self._run(work)

    def _announce(self, db: rows.Db, sequence: int) -> None:
        # Delivered at commit, to every replica listening (this one too).
        db.run("SELECT pg_notify(?, ?)", (CHANNEL, str(sequence)))

    async def follow(
        self,
        on_notice: Callable[[], Awaitable[None]],
        resync_seconds: float = 30.0,
    ) -> None:
        """Call ``on_notice`` after every change notice, reconnect and resync period; forever.

        Notices carry no state: ``on_notice`` compares the sequence itself, so
        a notice lost while the connection was down costs nothing once the
        catch-up after reconnecting has run.
        """
        backoff = 0.5
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, **KEEPALIVES
                )
                async with connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    log.info("store.listening", database=redact(self._url))
                    backoff = 0.5
                    await on_notice()  # whatever was missed while not listening
                    while True:
                        async for _notice in connection.notifies(
                            timeout=resync_seconds, stop_after=1
                        ):
                            pass
                        await on_notice()
            except (psycopg.Error, StoreUnavailable) as error:
                log.warning("store.listen_lost", database=redact(self._url), error=str(error))
                if not isinstance(error, StoreUnavailable):
                    self._unavailable(str(error))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._pool.close)
        self._executor.shutdown()


def _migrate(db: rows.Db, where: str) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` under a transaction-scoped advisory lock."""
    db.run("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
    db.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    found = db.all("SELECT version FROM schema_version")
    if not found:
        db.run("INSERT INTO schema_version (version) VALUES (0)")
    rows.migrate(db, found[0]["version"] if found else 0, f"database {where}")
    db.run("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
