"""The ``Store`` methods both engines share, on top of two transaction primitives."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from xds_server.auth.tokens import TokenRecord
from xds_server.model.operations import Change
from xds_server.model.state import HistoryEntry, World
from xds_server.store import rows
from xds_server.store.base import ChangeFunction, StateDump, StoreHealth, TokenEdit

T = TypeVar("T")


class SqlStore:
    """A ``Store`` over ``rows``; an engine supplies ``_read`` and ``_write``.

    ``_read`` runs a function in one read-only snapshot, ``_write`` in one
    write transaction that commits on return and rolls back on any error;
    both run it off the event loop. ``_announce`` is called inside every
    write, after the change (PostgreSQL notifies the other replicas there).
    """

    health: StoreHealth

    async def _read(self, query: Callable[[rows.Db], T]) -> T:
        raise NotImplementedError

    async def _write(self, work: Callable[[rows.Db], T]) -> T:
        raise NotImplementedError

    def _announce(self, db: rows.Db, sequence: int) -> None:
        """A write is about to commit as ``sequence``; nothing to do by default."""

    async def load(self) -> World:
        return await self._read(rows.load_world)

    async def load_versioned(self) -> tuple[World, int]:
        return await self._read(lambda db: (rows.load_world(db), rows.sequence(db)))

    async def sequence(self) -> int:
        return await self._read(rows.sequence)

    async def transact(self, change: ChangeFunction[T], credential: str | None = None) -> Change[T]:
        def work(db: rows.Db) -> Change[T]:
            # First: on PostgreSQL the sequence row's lock must be held
            # before the world is read, so writers on every replica queue here.
            sequence = rows.bump_sequence(db)
            rows.check_credential(db, credential)
            before = rows.load_world(db)
            result = change(before, rows.DbHistory(db))
            rows.write_change(db, before, result)
            self._announce(db, sequence)
            return result

        return await self._write(work)

    async def history(self, service: str, limit: int | None = None) -> list[HistoryEntry]:
        return await self._read(lambda db: rows.history(db, service, limit))

    async def export(self) -> StateDump:
        return await self._read(rows.dump)

    async def import_state(
        self, dump: StateDump, replace: bool, credential: str | None = None
    ) -> None:
        def work(db: rows.Db) -> None:
            self._announce(db, rows.restore(db, dump, replace, credential))

        await self._write(work)

    async def tokens(self) -> tuple[TokenRecord, ...]:
        return await self._read(rows.load_tokens)

    async def edit_tokens(
        self, edit: TokenEdit, credential: str | None = None
    ) -> tuple[TokenRecord, ...]:
        def work(db: rows.Db) -> tuple[TokenRecord, ...]:
            sequence = rows.bump_sequence(db)
            rows.check_credential(db, credential)
            before = rows.load_tokens(db)
            after = edit(before)
            rows.write_tokens(db, before, after)
            self._announce(db, sequence)
            return after

        return await self._write(work)

    async def post_fleet(
        self,
        replica: str,
        now: float,
        sequence: int,
        statuses: list[tuple[str, str, str]] | None,
    ) -> None:
        await self._write(lambda db: rows.post_fleet(db, replica, now, sequence, statuses))

    async def fleet_elsewhere(self, replica: str, fresh_after: float) -> list[rows.Row]:
        return await self._read(lambda db: rows.fleet_elsewhere(db, replica, fresh_after))
