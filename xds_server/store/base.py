"""The store interface: the one seam between the pure model and persistence.

A store keeps the ``World`` and the history of every service. ``transact``
runs a pure change function on the current world inside one serialised write
transaction and persists its result, so concurrent writers never lose an
update. SQLite (one process) and PostgreSQL (several replicas) implement it
with the same SQL (``xds_server.store.rows``).

Every write also bumps one global change sequence; ``load_versioned`` returns
it with the world, so a replica can tell whether it has seen the latest state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import structlog

from xds_server.auth.tokens import TokenRecord
from xds_server.model.hooks import Hook
from xds_server.model.operations import Change, HistoryReader
from xds_server.model.state import HistoryEntry, World
from xds_server.store.committed import WorldUpdate

if TYPE_CHECKING:
    from xds_server.store.outbox import Outbox

T = TypeVar("T")

log = structlog.get_logger(__name__)

ChangeFunction = Callable[[World, HistoryReader], Change[T]]
# A pure edit of the token set: the tokens before → the tokens after.
TokenEdit = Callable[[tuple[TokenRecord, ...]], tuple[TokenRecord, ...]]
# The same for the hooks.
HookEdit = Callable[[tuple[Hook, ...]], tuple[Hook, ...]]


def iso_time(seconds: float) -> str:
    """A moment as events and history record it: UTC, to the millisecond."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


class StoreError(StrEnum):
    """Why a store call failed: the ``kind`` label of ``xds_store_errors_total``."""

    DISK_FULL = "disk_full"
    READ_ONLY = "read_only"
    IO = "io"
    CORRUPT = "corrupt"
    BUSY = "busy"
    FILE_LOST = "file_lost"
    UNREACHABLE = "unreachable"
    OTHER = "other"


# What clears an outage, weakest first: the next call that succeeds, only a write
# (a full disk still reads), or nothing (a lost file: only a restart on a restored one).
_CLEARED_BY = ("any", "write", "never")


@dataclass(frozen=True)
class _Outage:
    since: float
    kind: StoreError
    message: str
    cleared_by: str


class StoreHealth:
    """Whether the store works, kept by the store itself on every call it makes (from
    its worker threads and the event loop: hence the lock); read by `xdsctl status`,
    /readyz and the metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outage: _Outage | None = None
        self.on_change: Callable[[bool], None] = lambda _available: None
        self.on_error: Callable[[StoreError], None] = lambda _kind: None

    def failed(self, kind: StoreError, message: str, *, during_write: bool) -> None:
        """A call failed: one log line, one count, and unavailable until it clears."""
        log.error("store.error", kind=kind.value, write=during_write, error=message)
        self.on_error(kind)
        cleared_by = "any"
        if kind is StoreError.FILE_LOST:
            cleared_by = "never"
        elif during_write and kind in (StoreError.DISK_FULL, StoreError.READ_ONLY, StoreError.IO):
            cleared_by = "write"
        with self._lock:
            outage = self._outage
            if outage is not None and _CLEARED_BY.index(outage.cleared_by) > _CLEARED_BY.index(
                cleared_by
            ):
                return  # a weaker failure does not hide a stronger one
            self._outage = _Outage(time.time(), kind, message, cleared_by)
            if outage is None:
                self.on_change(False)

    def answered(self, *, write: bool) -> None:
        """A call succeeded: available again, unless only a write (or nothing) can say so."""
        with self._lock:
            outage = self._outage
            if outage is None or outage.cleared_by == "never":
                return
            if outage.cleared_by == "write" and not write:
                return
            self._outage = None
            self.on_change(True)
        log.info("store.available", was=outage.message)

    @property
    def lost_for_good(self) -> bool:
        """The state can no longer be written until a restart: readiness fails."""
        outage = self._outage
        return outage is not None and outage.cleared_by == "never"

    def describe(self) -> str:
        """The word "available", or since when and why not."""
        outage = self._outage
        if outage is None:
            return "available"
        stamp = datetime.fromtimestamp(outage.since, UTC).isoformat(timespec="seconds")
        return f"unavailable since {stamp}: {outage.message}"


@dataclass(frozen=True)
class WriteRequest:
    """A write's request id (``x-request-id``), so that a retry is applied at most once."""

    id: str
    # What was asked (method, request, caller): a retry must ask the same.
    fingerprint: str
    # The reply to remember, made from the write's result inside its transaction.
    reply: Callable[[Any], bytes]


@dataclass(frozen=True)
class StateDump:
    """Everything a store holds: for backups and for moving between engines."""

    world: World
    history: tuple[HistoryEntry, ...]
    # Token hashes (never tokens): an import restores them when present.
    tokens: tuple[TokenRecord, ...] = ()
    # The hooks (None: the document says nothing of them, and an import keeps the
    # store's own). Their secrets only when exported with --include-secrets.
    hooks: tuple[Hook, ...] | None = None


# One row of a query, by column name.
Row = Mapping[str, Any]


class BoardStorage(Protocol):
    """Where replicas sharing one database post their Envoys (the fleet board), in the
    board's own format: each node's status as text, its CSDS config in bytes."""

    async def post_fleet(
        self,
        replica: str,
        now: float,
        sequence: int,
        statuses: list[tuple[str, str, bytes]] | None,
        parts: list[tuple[str, str, bytes]] | None = None,
    ) -> None:
        """Heartbeat ``replica``; with ``statuses`` (node id, status, CSDS identity),
        replace its posted nodes and put the CSDS ``parts`` that changed (node id,
        type URL, part)."""

    async def fleet_elsewhere(self, replica: str, fresh_after: float) -> list[Row]:
        """What the other replicas whose heartbeat is at or after ``fresh_after`` posted."""

    async def fleet_parts_elsewhere(self, replica: str, fresh_after: float) -> list[Row]:
        """Their CSDS parts, by node and type."""


class Store(Protocol):
    health: StoreHealth
    # Events and their deliveries (``xds_server.store.outbox``).
    outbox: Outbox
    # The file or database, as errors name it ("state file ./xds-state.db").
    where: str

    async def load(self) -> World:
        """The current world, read in one consistent snapshot."""

    async def load_versioned(self) -> tuple[World, int]:
        """The current world and the change sequence it reflects, in one snapshot."""

    async def sequence(self) -> int:
        """The change sequence: how many changes were ever committed."""

    async def updates_since(self, sequence: int, *, look: bool = True) -> WorldUpdate:
        """The latest committed world and what changed after ``sequence`` (the services
        touched, or None for anything). ``look=False``: what this process holds already
        (after its own commit), without asking the database."""

    async def transact(
        self,
        change: ChangeFunction[T],
        credential: str | None = None,
        request: WriteRequest | None = None,
        actor: str = "",
    ) -> Change[T]:
        """Run ``change`` on the current world and persist what it returns, atomically.

        Writers are serialised. If ``change`` raises, or its world breaks a rule
        (``xds_server.model.invariants``), nothing is written and the error
        propagates. ``credential``: the caller's token hash, checked to still
        exist inside the transaction (``Unauthenticated`` if revoked).
        ``request``: raises ``Replayed`` when its id was committed before. The
        same two arguments, with the same meaning, on every write below.
        ``actor``: who the change's events name when it makes no history entry.
        """

    async def preview(self, change: ChangeFunction[T]) -> Change[T]:
        """What ``transact`` would commit, checked the same way, without writing: for
        ``--dry-run``."""

    async def tokens(self) -> tuple[TokenRecord, ...]:
        """Every token record, by name."""

    async def edit_tokens(
        self,
        edit: TokenEdit,
        credential: str | None = None,
        request: WriteRequest | None = None,
    ) -> tuple[TokenRecord, ...]:
        """Replace the token set with ``edit(current)`` in one write; returns the new set."""

    async def edit_hooks(
        self,
        edit: HookEdit,
        credential: str | None = None,
        request: WriteRequest | None = None,
    ) -> tuple[Hook, ...]:
        """Replace the hooks with ``edit(current)`` in one write; returns the new set."""

    async def history(self, service: str, limit: int | None = None) -> list[HistoryEntry]:
        """The service's history entries, newest first, at most ``limit``."""

    async def export(self) -> StateDump:
        """Everything, read in one consistent snapshot."""

    async def import_state(
        self,
        dump: StateDump,
        replace: bool,
        credential: str | None = None,
        request: WriteRequest | None = None,
        actor: str = "",
    ) -> None:
        """Write ``dump`` as the whole state in one transaction, with the events of what
        it changed.

        Refused (``PreconditionFailed``) when the store holds any service,
        unless ``replace``; then the old state is deleted in the same transaction.
        """

    async def watch(self, on_notice: Callable[[], Awaitable[None]]) -> None:
        """Run for the server's life: call ``on_notice`` whenever the state may have
        changed elsewhere (another replica), and keep ``health`` current."""

    def board_storage(self) -> BoardStorage | None:
        """The fleet board's storage when several replicas share this store; None for a
        store only one server uses (a state file)."""

    async def close(self) -> None:
        """Release the store's resources; pending writes are finished first."""
