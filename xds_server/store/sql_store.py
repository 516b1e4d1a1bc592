"""The ``Store`` methods both engines share, on top of two transaction primitives.

The store keeps the latest committed world in memory (``CommittedWorld``), so a
change, a read or the follower never loads the whole world again: a change
here moves it forward with the world it wrote; changes by another replica are
caught up from the change log by reloading only the services they touched.
The work per change follows what changed, not the size of the world.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from xds_server.auth.tokens import TokenRecord
from xds_server.errors import PreconditionFailed, StateError, UnreadableRow
from xds_server.model.events import change_events
from xds_server.model.hooks import Hook
from xds_server.model.invariants import WorldDiff, summary, world_diff, world_problems
from xds_server.model.operations import Change
from xds_server.model.state import HistoryEntry, World
from xds_server.store import codec, outbox, rows
from xds_server.store.base import (
    ChangeFunction,
    HookEdit,
    StateDump,
    StoreHealth,
    TokenEdit,
    WriteRequest,
    iso_time,
)
from xds_server.store.committed import CommittedWorld, WorldUpdate

T = TypeVar("T")

log = structlog.get_logger(__name__)

# A catch-up that would reload more services than this reloads the whole world.
MAX_SERVICES_RELOADED = 500


def refuse_broken(world: World, services: Iterable[str] | None, error: type[Exception]) -> None:
    """Raise ``error`` naming the rules ``world`` breaks (for ``services``, default all)."""
    problems = world_problems(world, services)
    if problems:
        log.error("store.state_refused", problems=[str(p) for p in problems])
        raise error(
            f"the state would break these rules, so nothing was written: {summary(problems)}"
        )


def _checked(before: World, result: Change[T]) -> tuple[WorldDiff, frozenset[str]]:
    """A change's diff and the services it touched, refused if its world breaks a rule.

    What the change says it touched bounds the diff and the check; a change that does
    not say (a test's own) is compared whole. The model keeps every rule by
    construction; this is the last line."""
    touched = [result.touched] if result.touched else None
    diff = world_diff(before, result.world, touched)
    services = frozenset(touched or ()) | diff.touched_services
    refuse_broken(result.world, services, PreconditionFailed)
    return diff, services


@dataclass(frozen=True)
class _Written(Generic[T]):
    """What a write did: its result for the caller, and for the log and the committed
    world: the new world (None: unchanged), the services it touched (None: all)."""

    result: T
    world: World | None
    services: frozenset[str] | None
    tokens: bool = False


class SqlStore:
    """A ``Store`` over ``rows``; an engine supplies ``_read`` and ``_write``.

    ``_read`` runs a function in one read-only snapshot, ``_write`` in one
    write transaction that commits on return and rolls back on any error;
    both run it off the event loop, on worker threads. ``_announce`` is called
    inside every write, after the change (PostgreSQL notifies the other
    replicas there). ``where`` names the file or database in errors.
    """

    health: StoreHealth
    where: str
    outbox: outbox.Outbox
    _committed: CommittedWorld

    async def _read(self, query: Callable[[rows.Db], T]) -> T:
        raise NotImplementedError

    async def _write(self, work: Callable[[rows.Db], T]) -> T:
        raise NotImplementedError

    def _announce(self, db: rows.Db, sequence: int) -> None:
        """A write is about to commit as ``sequence``; nothing to do by default."""

    def _readable(self, work: Callable[[rows.Db], T]) -> Callable[[rows.Db], T]:
        """``work``, with a stored row that does not decode naming the store and the fix
        (only rows raise ``UnreadableRow``: a model error passes through unchanged)."""

        def run(db: rows.Db) -> T:
            try:
                return work(db)
            except UnreadableRow as error:
                raise StateError(
                    f"the state in {self.where} cannot be read: {error}; nothing was changed: "
                    "restore a backup (`xdsctl state import` of an export, into a server on "
                    "a new --state or an empty database)"
                ) from error

        return run

    # --- the committed world -----------------------------------------------------

    def _current(self, db: rows.Db, sequence: int) -> World:
        """The committed world at ``sequence`` (the database's, read in ``db``): from
        memory, caught up by the change log, or, past a gap, loaded whole."""
        world, held = self._committed.get()
        if world is not None and held >= sequence:
            # Newer is possible for a read whose snapshot began before this process's
            # latest commit was recorded: that commit is as committed.
            return world
        if world is not None and held < sequence:
            caught_up = self._caught_up(db, world, held, sequence)
            if caught_up is not None:
                return caught_up
        world = rows.load_world(db)
        self._committed.advance(world, sequence, None, True)
        return world

    def _caught_up(self, db: rows.Db, world: World, held: int, sequence: int) -> World | None:
        """``world`` (at ``held``) brought to ``sequence`` by reloading what the change log
        says changed; None when the log cannot tell (a gap, an import, too much)."""
        log_rows = [r for r in rows.changes_after(db, held) if r["seq"] <= sequence]
        if [r["seq"] for r in log_rows] != list(range(held + 1, sequence + 1)):
            return None
        if any(r["everything"] for r in log_rows):
            return None
        names = sorted({n for r in log_rows for n in codec.decode_names(r["services"])})
        if len(names) > MAX_SERVICES_RELOADED:
            return None
        fresh = rows.load_services(db, names) if names else World()
        gone = [i for name in names for i in world.index.by_service.get(name, ())]
        world = world.replace(
            services=fresh.services.values(),
            deployments=fresh.deployments.values(),
            removed=[i for i in gone if i not in fresh.deployments],
        )
        tokens = any(r["tokens"] for r in log_rows)
        self._committed.advance(world, sequence, frozenset(names), tokens, since=held)
        return world

    async def updates_since(self, sequence: int, *, look: bool = True) -> WorldUpdate:
        """The latest world and what changed after ``sequence``. ``look=False``: what
        this process already holds (right after its own commit), without a query."""
        if not look:
            known = self._committed.since(sequence)
            if known is not None:
                return known
        await self._read(self._readable(lambda db: self._current(db, rows.sequence(db))))
        update = self._committed.since(sequence)
        assert update is not None  # _current put a world there
        return update

    # --- reads ---------------------------------------------------------------------

    async def load(self) -> World:
        return (await self.updates_since(-1)).world

    async def load_versioned(self) -> tuple[World, int]:
        update = await self.updates_since(-1)
        return update.world, update.sequence

    async def sequence(self) -> int:
        return await self._read(rows.sequence)

    async def history(self, service: str, limit: int | None = None) -> list[HistoryEntry]:
        return await self._read(self._readable(lambda db: rows.history(db, service, limit)))

    async def export(self) -> StateDump:
        def everything(db: rows.Db) -> StateDump:
            return dataclasses.replace(rows.dump(db), hooks=outbox.load_hooks(db))

        return await self._read(self._readable(everything))

    async def tokens(self) -> tuple[TokenRecord, ...]:
        return await self._read(self._readable(rows.load_tokens))

    # --- writes --------------------------------------------------------------------

    async def _write_change(
        self,
        work: Callable[[rows.Db, World | None], _Written[T]],
        credential: str | None,
        request: WriteRequest | None,
        needs_world: bool = True,
    ) -> T:
        """Every write: take the sequence (on PostgreSQL also the writers' lock), check
        the credential and the request id, do ``work`` on the committed world, log what
        it touched, remember the reply, announce; once committed, hold its world."""
        done: list[tuple[int, _Written[T]]] = []

        def transaction(db: rows.Db) -> T:
            sequence = rows.bump_sequence(db)
            rows.check_credential(db, credential)
            if request is not None:
                rows.recall_request(db, request)
            before = self._current(db, sequence - 1) if needs_world else None
            written = work(db, before)
            rows.log_change(db, sequence, written.services, written.tokens)
            if request is not None:
                reply = request.reply(written.result)
                rows.remember_request(db, request, reply, time.time())
            self._announce(db, sequence)
            done[:] = [(sequence, written)]
            return written.result

        result = await self._write(self._readable(transaction))
        sequence, written = done[0]
        world = written.world
        if world is None:
            world, held = self._committed.get()
            if world is None or held != sequence - 1:
                return result  # a later read catches up
        self._committed.advance(world, sequence, written.services, written.tokens)
        return result

    async def transact(
        self,
        change: ChangeFunction[T],
        credential: str | None = None,
        request: WriteRequest | None = None,
        actor: str = "",
    ) -> Change[T]:
        def work(db: rows.Db, before: World | None) -> _Written[Change[T]]:
            assert before is not None
            result = change(before, rows.DbHistory(db))
            diff, services = _checked(before, result)
            rows.write_change(db, diff, result.history)
            self._write_events(db, before, result.world, services, result.history, actor)
            return _Written(result, result.world, services)

        return await self._write_change(work, credential, request)

    async def preview(self, change: ChangeFunction[T]) -> Change[T]:
        def run(db: rows.Db) -> Change[T]:
            before = self._current(db, rows.sequence(db))
            result = change(before, rows.DbHistory(db))
            _checked(before, result)  # refused as the commit would be
            return result

        return await self._read(self._readable(run))

    async def import_state(
        self,
        dump: StateDump,
        replace: bool,
        credential: str | None = None,
        request: WriteRequest | None = None,
        actor: str = "",
    ) -> None:
        # Checked here too (state_from_json did): a store writes no broken world.
        refuse_broken(dump.world, None, PreconditionFailed)

        def work(db: rows.Db, before: World | None) -> _Written[None]:
            assert before is not None
            rows.restore(db, dump, replace)
            # What the import changed, told to the hooks the store held: the document's
            # own hooks start with what comes after it (a move of engines replays nothing).
            services = {*before.services, *dump.world.services}
            self._write_events(db, before, dump.world, services, (), actor)
            if dump.hooks is not None:
                held = outbox.load_hooks(db)
                outbox.write_hooks(db, held, outbox.with_secrets_kept(dump.hooks, held))
            return _Written(None, dump.world, None, tokens=True)

        await self._write_change(work, credential, request)

    def _write_events(
        self,
        db: rows.Db,
        before: World,
        after: World,
        services: Iterable[str],
        history: Iterable[HistoryEntry],
        actor: str,
    ) -> None:
        """The outbox, in the change's own transaction: an event exists iff its change does."""
        moment = time.time()
        events = change_events(before, after, services, history, actor, iso_time(moment))
        outbox.write_events(db, events, self.outbox.clock, self.outbox.row_lock)

    async def edit_tokens(
        self,
        edit: TokenEdit,
        credential: str | None = None,
        request: WriteRequest | None = None,
    ) -> tuple[TokenRecord, ...]:
        def work(db: rows.Db, _before: World | None) -> _Written[tuple[TokenRecord, ...]]:
            before = rows.load_tokens(db)
            after = edit(before)
            rows.write_tokens(db, before, after)
            return _Written(after, None, frozenset(), tokens=True)

        return await self._write_change(work, credential, request, needs_world=False)

    async def edit_hooks(
        self,
        edit: HookEdit,
        credential: str | None = None,
        request: WriteRequest | None = None,
    ) -> tuple[Hook, ...]:
        def work(db: rows.Db, _before: World | None) -> _Written[tuple[Hook, ...]]:
            before = outbox.load_hooks(db)
            after = edit(before)
            outbox.write_hooks(db, before, after)
            return _Written(after, None, frozenset())

        return await self._write_change(work, credential, request, needs_world=False)
