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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from xds_server.model.operations import Change, HistoryReader
from xds_server.model.state import HistoryEntry, World

T = TypeVar("T")

ChangeFunction = Callable[[World, HistoryReader], Change[T]]


@dataclass(frozen=True)
class StateDump:
    """Everything a store holds: for backups and for moving between engines."""

    world: World
    history: tuple[HistoryEntry, ...]


class Store(Protocol):
    async def load(self) -> World:
        """The current world, read in one consistent snapshot."""

    async def load_versioned(self) -> tuple[World, int]:
        """The current world and the change sequence it reflects, in one snapshot."""

    async def sequence(self) -> int:
        """The change sequence: how many changes were ever committed."""

    async def transact(self, change: ChangeFunction[T]) -> Change[T]:
        """Run ``change`` on the current world and persist what it returns, atomically.

        Writers are serialised. If ``change`` raises, nothing is written and
        the error propagates.
        """

    async def history(self, service: str, limit: int | None = None) -> list[HistoryEntry]:
        """The service's history entries, newest first, at most ``limit``."""

    async def export(self) -> StateDump:
        """Everything, read in one consistent snapshot."""

    async def import_state(self, dump: StateDump, replace: bool) -> None:
        """Write ``dump`` as the whole state in one transaction.

        Refused (``PreconditionFailed``) when the store holds any service,
        unless ``replace``; then the old state is deleted in the same transaction.
        """

    async def close(self) -> None:
        """Release the store's resources; pending writes are finished first."""
