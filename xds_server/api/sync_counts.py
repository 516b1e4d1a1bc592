"""How many Envoys are connected and how many of those hold the current config.

One count serves the server's status reply (from the nodes it lists, or from the
other replicas' posted nodes) and the CLI (from the nodes a reply lists, when the
server is older than the reply's counts); it imports nothing, so the CLI stays light.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class Synced(Protocol):
    """A node's status as far as the count needs it."""

    @property
    def connected(self) -> bool: ...

    @property
    def in_sync(self) -> bool: ...


def connected_in_sync(nodes: Iterable[Synced]) -> tuple[int, int]:
    """(connected, in sync among the connected) of these nodes."""
    connected = [node for node in nodes if node.connected]
    return len(connected), sum(node.in_sync for node in connected)
