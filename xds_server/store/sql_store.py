"""The ``Store`` methods both engines share, on top of two transaction primitives."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

import structlog

from xds_server.auth.tokens import TokenRecord
from xds_server.errors import PreconditionFailed, StateError
from xds_server.model.invariants import summary, world_diff, world_problems
from xds_server.model.operations import Change
from xds_server.model.state import HistoryEntry, World
from xds_server.store import rows
from xds_server.store.base import ChangeFunction, StateDump, StoreHealth, TokenEdit, WriteRequest

T = TypeVar("T")

log = structlog.get_logger(__name__)


def refuse_broken(world: World, services: Iterable[str] | None, error: type[Exception]) -> None:
    """Raise ``error`` naming the rules ``world`` breaks (for ``services``, default all)."""
    problems = world_problems(world, services)
    if problems:
        log.error("store.state_refused", problems=[str(p) for p in problems])
        raise error(
            f"the state would break these rules, so nothing was written: {summary(problems)}"
        )


class SqlStore:
    """A ``Store`` over ``rows``; an engine supplies ``_read`` and ``_write``.

    ``_read`` runs a function in one read-only snapshot, ``_write`` in one
    write transaction that commits on return and rolls back on any error;
    both run it off the event loop. ``_announce`` is called inside every
    write, after the change (PostgreSQL notifies the other replicas there).
    ``where`` names the file or database in errors.
    """

    health: StoreHealth
    where: str

    async def _read(self, query: Callable[[rows.Db], T]) -> T:
        raise NotImplementedError

    async def _write(self, work: Callable[[rows.Db], T]) -> T:
        raise NotImplementedError

    def _announce(self, db: rows.Db, sequence: int) -> None:
        """A write is about to commit as ``sequence``; nothing to do by default."""

    def _decoding(self, query: Callable[[rows.Db], T]) -> Callable[[rows.Db], T]:
        """``query``, with rows that do not decode into model values (edited by hand, or
        by a broken tool) raising a ``StateError`` that names the store, not a crash."""

        def decode(db: rows.Db) -> T:
            try:
                return query(db)
            except (ValueError, TypeError, KeyError) as error:
                raise StateError(
                    f"the state in {self.where} cannot be read ({type(error).__name__}: "
                    f"{error}); nothing was changed: restore a backup with "
                    "`xdsctl state import --replace`"
                ) from error

        return decode

    async def _decoded(self, query: Callable[[rows.Db], T]) -> T:
        return await self._read(self._decoding(query))

    async def _write_change(
        self,
        work: Callable[[rows.Db], T],
        credential: str | None,
        request: WriteRequest | None,
    ) -> T:
        """Every write: take the sequence (on PostgreSQL also the writers' lock), check
        the credential and the request id, do ``work``, remember the reply, announce."""

        def transaction(db: rows.Db) -> T:
            sequence = rows.bump_sequence(db)
            rows.check_credential(db, credential)
            if request is not None:
                rows.recall_request(db, request)
            result = self._decoding(work)(db)
            if request is not None:
                rows.remember_request(db, request, request.reply(result), time.time())
            self._announce(db, sequence)
            return result

        return await self._write(transaction)

    async def load(self) -> World:
        return await self._decoded(rows.load_world)

    async def load_versioned(self) -> tuple[World, int]:
        return await self._decoded(lambda db: (rows.load_world(db), rows.sequence(db)))

    async def sequence(self) -> int:
        return await self._read(rows.sequence)

    async def transact(
        self,
        change: ChangeFunction[T],
        credential: str | None = None,
        request: WriteRequest | None = None,
    ) -> Change[T]:
        def work(db: rows.Db) -> Change[T]:
            before = rows.load_world(db)
            result = change(before, rows.DbHistory(db))
            diff = world_diff(before, result.world)
            # The model keeps every rule by construction; this is the last line.
            refuse_broken(result.world, diff.touched_services, PreconditionFailed)
            rows.write_change(db, diff, result.history)
            return result

        return await self._write_change(work, credential, request)

    async def history(self, service: str, limit: int | None = None) -> list[HistoryEntry]:
        return await self._decoded(lambda db: rows.history(db, service, limit))

    async def export(self) -> StateDump:
        return await self._decoded(rows.dump)

    async def import_state(
        self,
        dump: StateDump,
        replace: bool,
        credential: str | None = None,
        request: WriteRequest | None = None,
    ) -> None:
        refuse_broken(dump.world, None, PreconditionFailed)
        await self._write_change(lambda db: rows.restore(db, dump, replace), credential, request)

    async def tokens(self) -> tuple[TokenRecord, ...]:
        return await self._decoded(rows.load_tokens)

    async def edit_tokens(
        self,
        edit: TokenEdit,
        credential: str | None = None,
        request: WriteRequest | None = None,
    ) -> tuple[TokenRecord, ...]:
        def work(db: rows.Db) -> tuple[TokenRecord, ...]:
            before = rows.load_tokens(db)
            after = edit(before)
            rows.write_tokens(db, before, after)
            return after

        return await self._write_change(work, credential, request)

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
