"""The default store: one SQLite file in WAL mode, owned by one server.

Every change is one ``BEGIN IMMEDIATE`` transaction, so writers are serialised
and a ``kill -9`` at any moment leaves the last committed state intact. All
database work runs on one worker thread so that fsyncs never stall the event
loop. The file has one owner (``state_file.StateFileLock``), and a file
deleted, replaced or cut short while the server runs is noticed before the
next write (``state_file.StateFileWatch``), which is then refused.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from xds_server.errors import PreconditionFailed, StateError, StoreUnavailable
from xds_server.store import rows, schema
from xds_server.store.base import Row, StoreError, StoreHealth
from xds_server.store.committed import CommittedWorld
from xds_server.store.outbox import Outbox
from xds_server.store.schema import SCHEMA_VERSION
from xds_server.store.sql_store import SqlStore
from xds_server.store.state_file import (
    StateFileLock,
    StateFileWatch,
    check_state_directory,
    check_state_file,
)

T = TypeVar("T")

# How often the file is checked while no call comes (a write checks it first anyway).
WATCH_SECONDS = 2.0

# SQLite's primary result codes (``sqlite_errorname`` without its extended part).
_KIND_OF_CODE = {
    "SQLITE_FULL": StoreError.DISK_FULL,
    "SQLITE_READONLY": StoreError.READ_ONLY,
    "SQLITE_PERM": StoreError.READ_ONLY,
    "SQLITE_CANTOPEN": StoreError.IO,
    "SQLITE_IOERR": StoreError.IO,
    "SQLITE_CORRUPT": StoreError.CORRUPT,
    "SQLITE_NOTADB": StoreError.CORRUPT,
    "SQLITE_BUSY": StoreError.BUSY,
    "SQLITE_LOCKED": StoreError.BUSY,
}


def error_kind(error: sqlite3.Error) -> StoreError:
    """What kind of failure an sqlite3 error is (``SQLITE_IOERR_WRITE`` is ``io``)."""
    name = getattr(error, "sqlite_errorname", "") or ""
    for code, kind in _KIND_OF_CODE.items():
        if name == code or name.startswith(code + "_"):
            return kind
    return StoreError.OTHER


def _describe(kind: StoreError, path: Path, error: object) -> str:
    """The problem and its fix, for the client and the log."""
    if kind is StoreError.DISK_FULL:
        return f"disk full at {path.parent} ({error}): free some space"
    if kind is StoreError.READ_ONLY:
        return f"{path} is read-only ({error}): make the file and its directory writable"
    if kind is StoreError.IO:
        return f"I/O error on {path} ({error}): check the disk"
    if kind is StoreError.CORRUPT:
        return (
            f"{path} is damaged ({error}): restore a backup with `xdsctl state import` "
            "on a server with a new --state"
        )
    if kind is StoreError.BUSY:
        return f"{path} is locked by another program ({error}): stop it"
    return f"{path}: {error}"


class _SqliteDb:
    """``rows.Db`` over a sqlite3 connection (``?`` placeholders are native)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._connection.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._connection.execute(sql, params)

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._connection.executemany(sql, rows)


class SqliteStore(SqlStore):
    """A ``Store`` on one SQLite file; open it with ``SqliteStore.open``."""

    def __init__(
        self,
        path: Path,
        connection: sqlite3.Connection,
        executor: ThreadPoolExecutor,
        lock: StateFileLock,
        watch: StateFileWatch,
    ) -> None:
        self.path = path
        self.where = f"state file {path}"
        self._connection = connection
        self._executor = executor
        self._lock = lock
        self._file = watch
        self.health = StoreHealth()
        self._committed = CommittedWorld()
        self.outbox = Outbox(self._read, self._write)

    @classmethod
    async def open(cls, path: str | Path) -> SqliteStore:
        """Take the file (refused if another server has it), then open and migrate it."""
        path = Path(path)
        check_state_directory(path)
        lock = StateFileLock(path)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            check_state_file(path)
            connection = await loop.run_in_executor(executor, _connect, path)
        except BaseException:
            executor.shutdown()
            lock.release()
            raise
        try:
            watch = StateFileWatch(path)
        except OSError as error:
            connection.close()
            executor.shutdown()
            lock.release()
            raise StateError(f"state file {path} vanished while it was opened: {error}") from error
        return cls(path, connection, executor, lock, watch)

    async def _run(self, work: Callable[[rows.Db], T], begin: str, write: bool) -> T:
        def transaction() -> T:
            lost = self._file.lost()
            if lost is not None and (write or not self.health.lost_for_good):
                self._failed(StoreError.FILE_LOST, _lost_message(lost), write)
            if lost is not None and write:
                raise StoreUnavailable(
                    f"the state store refuses to write: {_lost_message(lost)}; nothing was changed"
                )
            try:
                with _transaction(self._connection, begin):
                    result = work(_SqliteDb(self._connection))
            except sqlite3.IntegrityError as error:
                raise PreconditionFailed(
                    f"the state store refused the change ({error}); nothing was changed"
                ) from error
            except sqlite3.Error as error:
                kind = error_kind(error)
                message = _describe(kind, self.path, error)
                self._failed(kind, message, write)
                verb = "write" if write else "read"
                raise StoreUnavailable(
                    f"the state store could not {verb}: {message}; nothing was changed"
                ) from error
            if write and (lost := self._file.lost()) is not None:
                # Lost while this write ran: it committed to a file that is gone, so it
                # holds only until a restart; no further write is taken.
                self._failed(StoreError.FILE_LOST, _lost_message(lost), write)
            else:
                self.health.answered(write=write)
            return result

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, transaction)

    def _failed(self, kind: StoreError, message: str, write: bool) -> None:
        # Runs on the store's thread; health callbacks touch metrics (thread-safe).
        self.health.failed(kind, message, during_write=write)

    async def _read(self, query: Callable[[rows.Db], T]) -> T:
        """Run ``query`` in a read transaction: one consistent snapshot."""
        return await self._run(query, "BEGIN", write=False)

    async def _write(self, work: Callable[[rows.Db], T]) -> T:
        """Run ``work`` in one write transaction."""
        return await self._run(work, "BEGIN IMMEDIATE", write=True)

    def board_storage(self) -> None:
        """One server per state file (its lock): no other replica to share a board with."""
        return None

    async def watch(self, on_notice: Callable[[], Awaitable[None]]) -> None:
        """No other writer can exist; check the file now and then, so a lost file shows
        in readiness and the log even while no call comes."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            if self.health.lost_for_good:
                continue
            lost = await loop.run_in_executor(self._executor, self._file.lost)
            if lost is not None:
                self._failed(StoreError.FILE_LOST, _lost_message(lost), False)

    async def close(self) -> None:
        def close() -> None:
            self._connection.close()
            self._file.close()

        await asyncio.get_running_loop().run_in_executor(self._executor, close)
        self._executor.shutdown()
        self._lock.release()


def _lost_message(what: str) -> str:
    return (
        f"{what} while the server ran; Envoys keep their config and reads still work: "
        "save what this server holds with `xdsctl state export > state.json`, then "
        "restart it and `xdsctl state import state.json`"
    )


def _connect(path: Path) -> sqlite3.Connection:
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
        kind = error_kind(error)
        raise StateError(
            f"state file {path} is not usable: {_describe(kind, path, error)}"
        ) from error
    except BaseException:
        connection.close()
        raise
    return connection


def _migrate(connection: sqlite3.Connection, path: Path) -> None:
    with _transaction(connection, "BEGIN IMMEDIATE"):
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        ours = version <= SCHEMA_VERSION  # a newer one is refused by rows.migrate
        if ours and ((version == 0 and tables) or (version > 0 and "services" not in tables)):
            listed = ", ".join(sorted(tables)[:5]) or "none"
            raise StateError(
                f"state file {path} is an SQLite database of something else "
                f"(schema version {version}, tables: {listed}): give --state a new file, "
                "or move that file away"
            )
        schema.migrate(_SqliteDb(connection), version, f"state file {path}")
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
        try:
            if kind is None:
                self._connection.execute("COMMIT")
        finally:
            # After a failed statement or COMMIT (a full disk) the transaction
            # may be open or already rolled back by SQLite; ROLLBACK only the
            # former, or its own error would hide the one that matters.
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
