"""What the fleet sees of one ADS stream: whether its node is in sync and why not, per
type what it ACKed against what it should hold, and (for CSDS) what it holds.

The node registry lists every stream by its report (``registry.StreamView``), so
``xdsctl status``, ``wait_for_sync`` and CSDS read the report, never the stream.
"""

from __future__ import annotations

from collections.abc import Mapping

from xds_server.xds.cache import PlanMemo, SnapshotCache
from xds_server.xds.ledger import AckLedger
from xds_server.xds.registry import Sync, TypeView
from xds_server.xds.resources import CLUSTER, ENDPOINT, PUSH_ORDER, SHORT_NAMES, ResourceSet
from xds_server.xds.subscription import Subscription


class StreamReport:
    """One stream's status, worked out from its subscriptions, plans and ledger."""

    def __init__(
        self,
        mode: str,
        peer: str,
        cache: SnapshotCache,
        subscriptions: Mapping[str, Subscription],
        plans: PlanMemo,
        ledger: AckLedger,
    ) -> None:
        self.mode = mode
        self.peer = peer
        self._cache = cache
        self._subscriptions = subscriptions
        self._plans = plans
        self._ledger = ledger
        # sync() is asked for by every waiter, often: computed once per event.
        self._sync: Sync | None = None
        self._sync_generation = -1
        # Per type, the fleet board's serialised CSDS part and what it showed
        # (``xds_server.xds.csds.posted_parts``).
        self.posted_parts: dict[str, tuple[object, bytes]] = {}

    def changed(self) -> None:
        """Something happened on the stream: the verdict is worked out again when asked."""
        self._sync = None

    def post(self) -> None:
        """Tell the registry whether this stream is in sync now (cheap while a push is on)."""
        node = self._ledger.node
        if node is None:
            return
        busy = any(state.pending is not None for state in self._subscriptions.values())
        self._ledger.registry.set_synced(node, self, not busy and self.sync().in_sync)

    def sync(self) -> Sync:
        """Whether this node holds the current config at its final stage, and if not why."""
        if self._sync is None or self._sync_generation != self._cache.generation:
            self._sync = self._compute_sync()
            self._sync_generation = self._cache.generation
        return self._sync

    def _required(self) -> list[str]:
        """The types a fully configured node must hold (EDS only if a cluster uses it)."""
        snapshot = self._cache.snapshot
        needs_eds = snapshot is not None and snapshot.needs_eds
        return [t for t in PUSH_ORDER if t != ENDPOINT or needs_eds]

    def _compute_sync(self) -> Sync:
        snapshot = self._cache.snapshot
        if snapshot is None:
            return Sync(False, "the server has no config yet")
        for type_url in self._required():
            state = self._subscriptions[type_url]
            short = SHORT_NAMES[type_url]
            if not state.requested:
                return Sync(False, f"has not asked for {short} yet")
            target = self._plans.target(type_url)
            if target is None:
                return Sync(False, f"{short} held back until its clusters are ACKed")
            if self._ledger.rejected(type_url, target.version):
                message = self._ledger.nack_message(type_url)
                return Sync(False, f"NACKed {short} {target.version}: {message}", rejected=True)
            if state.pending is not None or target.version != state.held_version:
                return Sync(False, f"has not ACKed {short} {target.version} yet")
            if type_url == CLUSTER and target.version != snapshot.clusters.version:
                return Sync(False, "cds still holds old clusters while routes move")
        return Sync(True)

    def type_views(self) -> list[TypeView]:
        """Per type, the version the node ACKed and the one it should hold now."""
        views = []
        for type_url in PUSH_ORDER:
            state = self._subscriptions[type_url]
            target = self._plans.target(type_url) if state.requested else None
            current = target.version if target is not None else ""
            views.append(TypeView(type_url, state.held_version, current))
        return views

    def requested(self) -> list[tuple[Subscription, ResourceSet | None]]:
        """Per type the node asked for, in push order: its subscription (what it holds)
        and what it should hold (None: nothing yet)."""
        return [
            (state, self._plans.target(state.type_url))
            for state in self._subscriptions.values()
            if state.requested
        ]
