"""The snapshot cache: the current snapshot, who to wake on change, and known versions.

The protocol code sees only this narrow surface (go-control-plane's split):
``snapshot`` to plan from, ``watch`` to be woken, ``resource_set`` to turn a
plan into a shared versioned set, the ``known_*`` look-ups to recognise a
version a node reports, and ``PlanMemo``, a stream's plans kept until what
they read changes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import structlog

from xds_server.errors import InconsistentSnapshot
from xds_server.xds.planner import PLANS, READERS, plan
from xds_server.xds.resources import PUSH_ORDER, Resource, ResourceSet
from xds_server.xds.snapshot import Snapshot
from xds_server.xds.subscription import Subscription

log = structlog.get_logger(__name__)

# Beyond the current snapshot, the sets and resources most recently used are
# kept, so that a version a node reports after a reconnect is recognised: at
# most these many, and at most these many bytes of serialised resources (a
# set costs its resources' bytes, shared or not; what a resource costs in
# memory is about twice its bytes once it was sent). So the cache holds the
# current snapshot, these two windows, and whatever connected nodes hold or are
# being sent (their streams keep those).
RECENT_SETS = 64
RECENT_SET_BYTES = 16 * 1024 * 1024
RECENT_RESOURCES = 4096
RECENT_RESOURCE_BYTES = 8 * 1024 * 1024


class _RecentBytes:
    """Most recently used first out last; bounded by a count and by the bytes it keeps."""

    def __init__(self, most: int, budget: int) -> None:
        self.most = most
        self.budget = budget
        self.bytes = 0
        self._items: OrderedDict[object, tuple[object, int]] = OrderedDict()

    def get(self, key: object) -> Any:
        found = self._items.get(key)
        if found is None:
            return None
        self._items.move_to_end(key)
        return found[0]

    def remember(self, key: object, value: object, cost: int) -> None:
        if key in self._items:
            self._items.move_to_end(key)
            return
        self._items[key] = (value, cost)
        self.bytes += cost
        while len(self._items) > 1 and (self.bytes > self.budget or len(self._items) > self.most):
            _key, (_value, freed) = self._items.popitem(last=False)
            self.bytes -= freed


class SnapshotCache:
    """Holds the current snapshot and wakes every watching stream when it changes."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self.published_at = 0.0
        # Bumped by every snapshot: lets streams cache what they derive from one.
        self.generation = 0
        # Per type, a counter bumped when a snapshot changes what that type's
        # plan reads (``PlanRule.inputs``): a weight change leaves the cluster,
        # endpoint and listener plans of every stream valid.
        self.input_stamps: dict[str, int] = dict.fromkeys(PUSH_ORDER, 0)
        self._inputs: dict[str, object] = {}
        self._watchers: set[Callable[[], None]] = set()
        self._sets = _RecentBytes(RECENT_SETS, RECENT_SET_BYTES)
        self._resources = _RecentBytes(RECENT_RESOURCES, RECENT_RESOURCE_BYTES)

    @property
    def snapshot(self) -> Snapshot | None:
        """The current snapshot; None until the state has been loaded."""
        return self._snapshot

    def set_snapshot(self, snapshot: Snapshot, *, check: bool = True) -> None:
        """Make ``snapshot`` current and wake every stream.

        ``check=False`` skips the consistency check: only for tests that must
        push a broken config below the validation that normally prevents it.
        """
        problems = snapshot.problems() if check else []
        if problems:
            raise InconsistentSnapshot("; ".join(problems))
        for resource_set in (*snapshot.sets(), snapshot.standby_clusters, snapshot.endpoints):
            self._remember(resource_set)
            # What this snapshot replaced: recognisable a while after (delta reconnects).
            for resource in resource_set.replaced:
                self._resources.remember(_resource_key(resource), resource, len(resource.value))
        for type_url, rule in PLANS.items():
            inputs = rule.inputs(snapshot)
            if self._inputs.get(type_url) != inputs:
                self._inputs[type_url] = inputs
                self.input_stamps[type_url] += 1
        self._snapshot = snapshot
        self.published_at = time.time()
        self.generation += 1
        log.info(
            "xds.snapshot",
            cds=snapshot.clusters.version,
            lds=snapshot.listeners.version,
            rds=snapshot.routes.version,
            clusters=len(snapshot.clusters.resources),
        )
        for wake in list(self._watchers):
            wake()

    def watch(self, wake: Callable[[], None]) -> Callable[[], None]:
        """Call ``wake`` on every change until the returned function is called."""
        self._watchers.add(wake)
        return lambda: self._watchers.discard(wake)

    def resource_set(self, type_url: str, resources: Iterable[Resource]) -> ResourceSet:
        """The shared set for these resources: built once, then reused by every node."""
        items = list(resources)
        version = ResourceSet.version_of(items)
        known = self.known_set(type_url, version)
        if known is None:
            known = ResourceSet.of(type_url, items)
            self._remember(known)
        return known

    def subset(self, resource_set: ResourceSet, names: Iterable[str]) -> ResourceSet:
        """The named part of a set (RDS and EDS subscriptions), shared by every node asking."""
        wanted = frozenset(names)
        if resource_set.names <= wanted:
            return resource_set
        key = ("subset", resource_set.version, wanted)
        known: ResourceSet | None = self._sets.get(key)
        if known is None:
            known = resource_set.only(wanted)
            self._sets.remember(key, known, known.size)
            self._remember(known)
        return known

    def _remember(self, resource_set: ResourceSet) -> None:
        self._sets.remember(
            (resource_set.type_url, resource_set.version), resource_set, resource_set.size
        )

    def _current(self) -> list[ResourceSet]:
        snapshot = self._snapshot
        if snapshot is None:
            return []
        return [*snapshot.sets(), snapshot.standby_clusters, snapshot.endpoints]

    def known_set(self, type_url: str, version: str) -> ResourceSet | None:
        """The set this server built with that version, if it remembers one."""
        for current in self._current():
            if (current.type_url, current.version) == (type_url, version):
                return current
        found: ResourceSet | None = self._sets.get((type_url, version))
        return found

    def known_resource(self, type_url: str, name: str, version: str) -> Resource | None:
        """A resource this server built, by type, name and version, if it remembers it."""
        for current in self._current():
            if current.type_url == type_url:
                resource = current.resources.get(name)
                if resource is not None and resource.version == version:
                    return resource
        found: Resource | None = self._resources.get((type_url, name, version))
        return found

    @property
    def retained_bytes(self) -> int:
        """What the recent windows hold beyond the current snapshot (at most their budgets)."""
        return self._sets.bytes + self._resources.bytes


class PlanMemo:
    """One stream's plans by type, each with the input stamp it was made from.

    An entry is dropped when the stream's subscription it reads changes
    (``forget``) and redone when the snapshot changes what it reads. A change
    or an ACK touches one or two types, so most look-ups are hits.
    """

    def __init__(self, cache: SnapshotCache, subscriptions: Mapping[str, Subscription]) -> None:
        self._cache = cache
        self._subscriptions = subscriptions
        self._plans: dict[str, tuple[int, ResourceSet | None]] = {}

    def target(self, type_url: str) -> ResourceSet | None:
        """What this node should hold next for this type; None: nothing to send yet."""
        stamp = self._cache.input_stamps[type_url]
        known = self._plans.get(type_url)
        if known is not None and known[0] == stamp:
            return known[1]
        made = plan(type_url, self._cache.snapshot, self._subscriptions, self._cache)
        self._plans[type_url] = (stamp, made)
        return made

    def forget(self, type_url: str) -> None:
        """``type_url``'s subscription changed: drop the plans that read it."""
        for reader in READERS.get(type_url, ()):
            self._plans.pop(reader, None)


def _resource_key(resource: Resource) -> tuple[str, str, str]:
    return (resource.type_url, resource.name, resource.version)
