"""The HA store: PostgreSQL, shared by several control-plane replicas.

The statements are SQLite's (``xds_server.store.rows``); what differs is how
writers are serialised and how replicas hear about each other's changes:

- every write transaction starts by bumping the one-row change sequence, whose
  row lock serialises writers on every replica: each change function sees the
  latest committed world, so no update is lost and ``--if-revision`` holds
  across replicas; a UNIQUE domain backs the model's own domain check;
- the same transaction sends ``NOTIFY xds_server_change`` (delivered at commit);
  ``watch`` listens, and after every notice, every reconnect and every
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

import psycopg
import psycopg_pool
import structlog
from psycopg.rows import dict_row

from xds_server.errors import OutcomeUnknown, PreconditionFailed, StateError, StoreUnavailable
from xds_server.redaction import redact_url_passwords as _redact
from xds_server.store import rows, schema
from xds_server.store.base import BoardStorage, Row, StoreError, StoreHealth
from xds_server.store.committed import CommittedWorld
from xds_server.store.outbox import Outbox, database_clock
from xds_server.store.schema import SCHEMA_VERSION
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


class _PgDb:
    """``rows.Db`` over a psycopg connection: ``?`` placeholders become ``%s``."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
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
        self,
        url: str,
        connect: dict[str, Any],
        pool: psycopg_pool.ConnectionPool,
        executor: ThreadPoolExecutor,
        resync_seconds: float,
    ) -> None:
        self._url = url
        self._connect = connect
        self._pool = pool
        self._executor = executor
        self._resync_seconds = resync_seconds
        self.where = f"database {_redact(url)}"
        self.health = StoreHealth()
        self._committed = CommittedWorld()
        self.outbox = Outbox(
            self._read,
            self._write,
            lock_clause=" FOR UPDATE OF d SKIP LOCKED",
            row_lock=" FOR UPDATE",
            clock=database_clock,
        )

    @classmethod
    async def open(
        cls,
        url: str,
        pool_timeout: float = 2.0,
        password: str | None = None,
        resync_seconds: float = 30.0,
    ) -> PostgresStore:
        """Connect, and migrate the schema once even if replicas start together.

        ``password``: from ``--store-password-file``; without it libpq looks in
        PGPASSWORD, PGPASSFILE and ~/.pgpass. Never in ``url`` (``ps`` shows it).
        """
        connect: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, **KEEPALIVES}
        if password is not None:
            connect["password"] = password
        pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            timeout=pool_timeout,
            check=psycopg_pool.ConnectionPool.check_connection,
            kwargs={"row_factory": dict_row, **connect},
            name="xds-store",
        )
        executor = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="pg-store")
        loop = asyncio.get_running_loop()

        def start() -> None:
            pool.open(wait=True, timeout=10)
            with pool.connection() as connection, connection.transaction():
                _migrate(_PgDb(connection), _redact(url))

        try:
            await loop.run_in_executor(executor, start)
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            await loop.run_in_executor(executor, pool.close)
            executor.shutdown()
            why = _redact(str(error))
            raise StateError(f"database {_redact(url)} is not usable: {why}") from error
        except BaseException:
            await loop.run_in_executor(executor, pool.close)
            executor.shutdown()
            raise
        return cls(url, connect, pool, executor, resync_seconds)

    async def _run(self, work: Callable[[rows.Db], T], begin: str, write: bool) -> T:
        """Run ``work`` in one transaction on a pooled connection, off the event loop."""

        def transaction() -> T:
            worked = False
            try:
                with self._pool.connection() as connection, connection.transaction():
                    if begin:
                        connection.execute(begin)
                    result = work(_PgDb(connection))
                    worked = True
            except psycopg_pool.PoolTimeout as error:
                why = f"no connection within {self._pool.timeout:g}s"
                raise self._unavailable(StoreError.UNREACHABLE, why, write) from error
            except psycopg.Error as error:
                kind = error_kind(error)
                if kind is None:
                    # A constraint the model should have kept: refused; the database is fine.
                    raise PreconditionFailed(
                        f"the database refused the change ({_redact(str(error))}); "
                        "nothing was changed"
                    ) from error
                if write and worked:
                    # The connection failed at COMMIT: it may or may not have happened.
                    self.health.failed(kind, _redact(str(error)), during_write=True)
                    raise OutcomeUnknown(
                        f"the database connection failed while committing "
                        f"({_redact(str(error))}): the change may or may not have been made"
                    ) from error
                raise self._unavailable(kind, str(error), write) from error
            self.health.answered(write=write)
            return result

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, transaction)

    def _unavailable(self, kind: StoreError, why: str, write: bool) -> StoreUnavailable:
        """The error for a failed call, recorded in the store's health."""
        message = f"database unavailable ({_redact(self._url)}): {_redact(why)}"
        self.health.failed(kind, message, during_write=write)
        return StoreUnavailable(f"{message}; nothing was changed, retry when it is back")

    async def _read(self, query: Callable[[rows.Db], T]) -> T:
        return await self._run(
            query, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", write=False
        )

    async def _write(self, work: Callable[[rows.Db], T]) -> T:
        return await self._run(work, "", write=True)

    def _announce(self, db: rows.Db, sequence: int) -> None:
        # Delivered at commit, to every replica listening (this one too).
        db.run("SELECT pg_notify(?, ?)", (CHANNEL, str(sequence)))

    def board_storage(self) -> BoardStorage:
        """Replicas share this database: the fleet board lives in it too."""
        return self

    async def post_fleet(
        self,
        replica: str,
        now: float,
        sequence: int,
        statuses: list[tuple[str, str, bytes]] | None,
        parts: list[tuple[str, str, bytes]] | None = None,
    ) -> None:
        await self._write(
            lambda db: rows.post_fleet(db, replica, now, sequence, statuses, parts or ())
        )

    async def fleet_elsewhere(self, replica: str, fresh_after: float) -> list[Row]:
        return await self._read(lambda db: rows.fleet_elsewhere(db, replica, fresh_after))

    async def fleet_parts_elsewhere(self, replica: str, fresh_after: float) -> list[Row]:
        return await self._read(lambda db: rows.fleet_parts_elsewhere(db, replica, fresh_after))

    async def watch(self, on_notice: Callable[[], Awaitable[None]]) -> None:
        """Call ``on_notice`` after every change notice, reconnect and resync period; forever.

        Notices carry no state: ``on_notice`` compares the sequence itself, so
        a notice lost while the connection was down costs nothing once the
        catch-up after reconnecting has run.
        """
        backoff = 0.5
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, **self._connect
                )
                async with connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    log.info("store.listening", database=_redact(self._url))
                    backoff = 0.5
                    await on_notice()  # whatever was missed while not listening
                    while True:
                        async for _notice in connection.notifies(
                            timeout=self._resync_seconds, stop_after=1
                        ):
                            pass
                        await on_notice()
            except psycopg.Error as error:
                log.warning(
                    "store.listen_lost",
                    database=_redact(self._url),
                    error=_redact(str(error)),
                )
                self._unavailable(StoreError.UNREACHABLE, str(error), False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._pool.close)
        self._executor.shutdown()


# By SQLSTATE (psycopg's exception classes do not follow availability: a
# read-only standby's 25006 is an InternalError).
_KIND_OF_STATE = {
    "25006": StoreError.READ_ONLY,  # read_only_sql_transaction: a standby after failover
    "53100": StoreError.DISK_FULL,  # disk_full
    "53300": StoreError.UNREACHABLE,  # too_many_connections
}
_KIND_OF_CLASS = {
    "08": StoreError.UNREACHABLE,  # connection exception
    "53": StoreError.OTHER,  # insufficient resources (memory, ...)
    "57": StoreError.UNREACHABLE,  # operator intervention: shutdown, cancelled
    "58": StoreError.IO,  # system error
    "XX": StoreError.CORRUPT,  # internal error, data corrupted
}


def error_kind(error: psycopg.Error) -> StoreError | None:
    """The outage an error shows, or None for a refusal of this change only (a constraint,
    a conflict): by SQLSTATE, then class; no SQLSTATE is a lost connection."""
    state = error.sqlstate
    if state is None:
        return StoreError.UNREACHABLE if isinstance(error, psycopg.OperationalError) else None
    return _KIND_OF_STATE.get(state) or _KIND_OF_CLASS.get(state[:2])


def _migrate(db: rows.Db, where: str) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` under a transaction-scoped advisory lock."""
    db.run("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
    db.run("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    found = db.all("SELECT version FROM schema_version")
    if not found:
        db.run("INSERT INTO schema_version (version) VALUES (0)")
    schema.migrate(db, found[0]["version"] if found else 0, f"database {where}")
    db.run("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
