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

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import structlog

from xds_server.auth.tokens import TokenRecord
from xds_server.model.operations import Change, HistoryReader
from xds_server.model.state import HistoryEntry, World

T = TypeVar("T")

log = structlog.get_logger(__name__)

ChangeFunction = Callable[[World, HistoryReader], Change[T]]
# A pure edit of the token set: the tokens before → the tokens after.
TokenEdit = Callable[[tuple[TokenRecord, ...]], tuple[TokenRecord, ...]]


class StoreHealth:
    """Whether the store answers, kept by the store itself on every call it makes;
    read by `xdsctl status`, /readyz and the metrics."""

    def __init__(self) -> None:
        self._unavailable: tuple[float, str] | None = None  # since, why
        self.on_change: Callable[[bool], None] = lambda _available: None

    def lost(self, error: str) -> None:
        if self._unavailable is None:
            self._unavailable = (time.time(), error)
            log.warning("store.unavailable", error=error)
            self.on_change(False)

    def answered(self) -> None:
        if self._unavailable is not None:
            log.info("store.available", was=self.describe())
            self._unavailable = None
            self.on_change(True)

    def describe(self) -> str:
        """The word "available", or since when and why not."""
        if self._unavailable is None:
            return "available"
        since, error = self._unavailable
        stamp = datetime.fromtimestamp(since, UTC).isoformat(timespec="seconds")
        return f"unavailable since {stamp}: {error}"


@dataclass(frozen=True)
class StateDump:
    """Everything a store holds: for backups and for moving between engines."""

    world: World
    history: tuple[HistoryEntry, ...]
    # Token hashes (never tokens): an import restores them when present.
    tokens: tuple[TokenRecord, ...] = ()


class Store(Protocol):
    health: StoreHealth

    async def load(self) -> World:
        """The current world, read in one consistent snapshot."""

    async def load_versioned(self) -> tuple[World, int]:
        """The current world and the change sequence it reflects, in one snapshot."""

    async def sequence(self) -> int:
        """The change sequence: how many changes were ever committed."""

    async def transact(self, change: ChangeFunction[T], credential: str | None = None) -> Change[T]:
        """Run ``change`` on the current world and persist what it returns, atomically.

        Writers are serialised. If ``change`` raises, nothing is written and
        the error propagates. ``credential``: the caller's token hash, checked
        to still exist inside the transaction (``Unauthenticated`` if revoked).
        """

    async def tokens(self) -> tuple[TokenRecord, ...]:
        """Every token record, by name."""

    async def edit_tokens(
        self, edit: TokenEdit, credential: str | None = None
    ) -> tuple[TokenRecord, ...]:
        """Replace the token set with ``edit(current)`` in one write; returns the new set."""

    async def history(self, service: str, limit: int | None = None) -> list[HistoryEntry]:
        """The service's history entries, newest first, at most ``limit``."""

    async def export(self) -> StateDump:
        """Everything, read in one consistent snapshot."""

    async def import_state(
        self, dump: StateDump, replace: bool, credential: str | None = None
    ) -> None:
        """Write ``dump`` as the whole state in one transaction.

        Refused (``PreconditionFailed``) when the store holds any service,
        unless ``replace``; then the old state is deleted in the same transaction.
        """

    async def close(self) -> None:
        """Release the store's resources; pending writes are finished first."""
