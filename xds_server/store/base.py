"""The store interface: the one seam between the pure model and persistence.

A store keeps the ``World`` and the history of every service. ``transact``
runs a pure change function on the current world inside one serialised write
transaction and persists its result, so concurrent writers never lose an
update. SQLite implements it now; a PostgreSQL store for several replicas can
slot in behind the same four methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from xds_server.model.operations import Change, HistoryReader
from xds_server.model.state import HistoryEntry, World

T = TypeVar("T")

ChangeFunction = Callable[[World, HistoryReader], Change[T]]


class Store(Protocol):
    async def load(self) -> World:
        """The current world, read in one consistent snapshot."""

    async def transact(self, change: ChangeFunction[T]) -> Change[T]:
        """Run ``change`` on the current world and persist what it returns, atomically.

        Writers are serialised. If ``change`` raises, nothing is written and
        the error propagates.
        """

    async def history(self, service: str, limit: int | None = None) -> list[HistoryEntry]:
        """The service's history entries, newest first, at most ``limit``."""

    async def close(self) -> None:
        """Release the store's resources; pending writes are finished first."""
