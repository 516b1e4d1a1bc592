"""The snapshot cache: the current snapshot, who to wake on change, and known versions.

The protocol code sees only this narrow surface (go-control-plane's split):
``snapshot`` to plan from, ``watch`` to be woken, ``resource_set`` to turn a
plan into a shared versioned set, and the ``known_*`` look-ups to recognise a
version a node reports.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import structlog

from xds_server.errors import XdsServerError
from xds_server.xds.resources import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    ROUTE,
    Resource,
    ResourceSet,
)
from xds_server.xds.snapshot import Snapshot

log = structlog.get_logger(__name__)

# Sets and resources recently built, so that a version a node reports (after a
# reconnect) can be recognised. Big enough for the stages of many pushes.
KNOWN_LIMIT = 4096


class InconsistentSnapshot(XdsServerError):
    """A snapshot that would make Envoy fail; it is refused, the current one stays."""


class _Lru(OrderedDict):  # type: ignore[type-arg]
    def remember(self, key: object, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > KNOWN_LIMIT:
            self.popitem(last=False)


def plan_inputs(snapshot: Snapshot) -> dict[str, object]:
    """Per type, what of the snapshot its plan reads (``xds_server.xds.planner``), by version."""
    return {
        CLUSTER: (
            snapshot.clusters.version,
            frozenset((r.name, r.version) for r in snapshot.standby_clusters.values()),
        ),
        ENDPOINT: frozenset((r.name, r.version) for r in snapshot.endpoints.values()),
        LISTENER: snapshot.listeners.version,
        ROUTE: snapshot.routes.version,
    }


class SnapshotCache:
    """Holds the current snapshot and wakes every watching stream when it changes."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self.published_at = 0.0
        # Bumped by every snapshot: lets streams cache what they derive from one.
        self.generation = 0
        # Per type, a counter bumped when a snapshot changes what that type's
        # plan reads (see ``plan_inputs``): a weight change leaves the cluster,
        # endpoint and listener plans of every stream valid.
        self.input_stamps: dict[str, int] = dict.fromkeys(PUSH_ORDER, 0)
        self._inputs: dict[str, object] = {}
        self._watchers: set[Callable[[], None]] = set()
        self._sets = _Lru()
        self._resources = _Lru()

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
        for resource_set in snapshot.sets():
            self._remember(resource_set)
        for resource in [*snapshot.endpoints.values(), *snapshot.standby_clusters.values()]:
            self._resources.remember((resource.type_url, resource.name, resource.version), resource)
        for type_url, inputs in plan_inputs(snapshot).items():
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
        key = (type_url, frozenset((r.name, r.version) for r in items))
        known = self._sets.get(key)
        if known is None:
            known = ResourceSet.of(type_url, items)
            self._remember(known, key)
        return known

    def subset(self, resource_set: ResourceSet, names: Iterable[str]) -> ResourceSet:
        """The named part of a set (RDS and EDS subscriptions), shared by every node asking."""
        wanted = frozenset(names)
        if resource_set.names <= wanted:
            return resource_set
        key = ("subset", resource_set.version, wanted)
        known = self._sets.get(key)
        if known is None:
            known = resource_set.only(wanted)
            self._remember(known, key)
        return known

    def _remember(self, resource_set: ResourceSet, key: object = None) -> None:
        if key is None:
            key = (resource_set.type_url, frozenset(resource_set.versions().items()))
        self._sets.remember(key, resource_set)
        self._sets.remember((resource_set.type_url, resource_set.version), resource_set)
        for resource in resource_set.resources.values():
            self._resources.remember((resource.type_url, resource.name, resource.version), resource)

    def known_set(self, type_url: str, version: str) -> ResourceSet | None:
        """The set this server built with that version, if it remembers one."""
        return self._sets.get((type_url, version))

    def known_resource(self, type_url: str, name: str, version: str) -> Resource | None:
        return self._resources.get((type_url, name, version))
