"""Make-before-break, per node: what each type should hold next, given what it holds now.

CDS and LDS responses are the complete state, so a change that swaps
clusters must go in stages or traffic fails (see docs/xds-ordering.md):

1. clusters: the desired ones *plus* every cluster the node's live routes
   still use (the union); Envoy ACKs CDS once the new ones have warmed;
2. routes: the desired table, only once the node holds every cluster it uses;
3. clusters again: once the node has accepted the new routes, the union
   shrinks to the desired clusters.

This is a pure function of the snapshot and of what the node has accepted,
so every node walks the stages at its own pace, changes that arrive mid-way
coalesce (the next plan simply starts from what the node holds), and a node
that rejects a stage stays on the last one it accepted.

What a node holds is given per type as name → Resource; a value of None is a
version this server never built (after a restart, or from another replica),
and a whole map of None means even the names are unknown (SotW reports only a
version). Unknowns are treated conservatively: never drop what may be routed.

``PLANS`` is the one place that says what each type's plan reads, of the
snapshot and of the node's subscriptions: the cache's input stamps and a
stream's plan memo (``xds_server.xds.cache.PlanMemo``) follow it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from xds_server.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, Resource, ResourceSet
from xds_server.xds.snapshot import Snapshot
from xds_server.xds.subscription import Subscription

Held = Mapping[str, Resource | None] | None
# One stream's subscriptions by type: what a plan reads of the node.
Subscriptions = Mapping[str, Subscription]


class SetMaker(Protocol):
    """The snapshot cache: sets shared by every node that plans the same."""

    def resource_set(self, type_url: str, resources: Iterable[Resource]) -> ResourceSet:
        """The shared set of these resources."""

    def subset(self, resource_set: ResourceSet, names: Iterable[str]) -> ResourceSet:
        """The shared part of ``resource_set`` with these names."""


def live_references(held_routes: Held) -> frozenset[str] | None:
    """The clusters the node's accepted routes use; None when they are unknown."""
    if held_routes is None or any(r is None for r in held_routes.values()):
        return None
    if len(held_routes) == 1:  # the one route table: its own set, not a copy
        return next(iter(held_routes.values())).references  # type: ignore[union-attr]
    return frozenset().union(*(r.references for r in held_routes.values() if r is not None))


def plan_clusters(
    snapshot: Snapshot, held_clusters: Held, held_routes: Held, cache: SetMaker
) -> ResourceSet:
    """The clusters to hold next: the desired ones, plus those still routed to.

    With the routes unknown, every cluster the node holds is kept; with the
    clusters unknown too, every standby cluster is (a superset of anything a
    node can route to, short of a deleted deployment). Mostly that adds none,
    and the desired set itself (shared by every node) is the plan.
    """
    desired = snapshot.clusters
    routed = live_references(held_routes)
    if routed is snapshot.routes.references:
        # The node's routes use the clusters the desired routes use (a weight change
        # shares that set), all of them desired: nothing to keep besides.
        return desired
    standby = snapshot.standby_clusters.resources
    # Only standby clusters can be extra: walk those (a few), not all held (thousands).
    holds = [n for n in standby if held_clusters is None or n in held_clusters]
    extra = sorted(
        name
        for name in holds
        if name not in desired.resources and (routed is None or name in routed)
    )
    if not extra:
        return desired
    return cache.resource_set(CLUSTER, [*desired.resources.values(), *(standby[n] for n in extra)])


def plan_routes(
    snapshot: Snapshot, held_clusters: Held, held_version: str = ""
) -> ResourceSet | None:
    """The desired routes once the node holds (and so has warmed) every cluster they use.

    ``held_version``: the version of the cluster set the node holds; when it is the
    desired set's, the routes' clusters are in it (the snapshot is consistent), so
    a weight change does not check thousands of names again.
    """
    if held_clusters is None:
        return None
    if held_version != snapshot.clusters.version and not all(
        name in held_clusters for name in snapshot.routes.references
    ):
        return None
    return snapshot.routes


def plan_endpoints(snapshot: Snapshot, names: Iterable[str], cache: SetMaker) -> ResourceSet:
    """The assignments of the named clusters, active or standby, that exist: one set
    shared by every node that asks for the same names (mostly: the active ones)."""
    wanted = frozenset(names)
    if wanted == snapshot.active_endpoints.names:
        return snapshot.active_endpoints
    return cache.subset(snapshot.endpoints, wanted)


# --- what each type's plan reads ---------------------------------------------------


@dataclass(frozen=True)
class PlanRule:
    """One type's plan and everything it reads: the cache keeps a stream's plan until
    one of those changes."""

    # What of the snapshot the plan reads, by version: a snapshot that leaves this
    # equal leaves every stream's plan valid (a weight change: all but RDS).
    inputs: Callable[[Snapshot], object]
    # The types whose subscription the plan reads (its own always: ``requested``).
    reads: tuple[str, ...]
    make: Callable[[Snapshot, Subscriptions, SetMaker], ResourceSet | None]


def _clusters(snapshot: Snapshot, subs: Subscriptions, cache: SetMaker) -> ResourceSet:
    # CDS keeps what the held routes still use.
    return plan_clusters(snapshot, subs[CLUSTER].held, subs[ROUTE].held, cache)


def _endpoints(snapshot: Snapshot, subs: Subscriptions, cache: SetMaker) -> ResourceSet:
    return plan_endpoints(snapshot, subs[ENDPOINT].names, cache)


def _listeners(snapshot: Snapshot, _subs: Subscriptions, _cache: SetMaker) -> ResourceSet:
    return snapshot.listeners


def _routes(snapshot: Snapshot, subs: Subscriptions, cache: SetMaker) -> ResourceSet | None:
    # RDS waits until the held clusters cover its references.
    clusters = subs[CLUSTER]
    routes = plan_routes(snapshot, clusters.held, clusters.held_version)
    if routes is None:
        return None
    return cache.subset(routes, subs[ROUTE].names)


PLANS: dict[str, PlanRule] = {
    CLUSTER: PlanRule(
        lambda s: (s.clusters.version, s.standby_clusters.version), (CLUSTER, ROUTE), _clusters
    ),
    ENDPOINT: PlanRule(lambda s: s.endpoints.version, (ENDPOINT,), _endpoints),
    LISTENER: PlanRule(lambda s: s.listeners.version, (LISTENER,), _listeners),
    ROUTE: PlanRule(lambda s: s.routes.version, (CLUSTER, ROUTE), _routes),
}
# Per type, the plans that read its subscription: which to redo when it changes.
READERS: dict[str, tuple[str, ...]] = {
    type_url: tuple(t for t, rule in PLANS.items() if type_url in rule.reads) for type_url in PLANS
}


def plan(
    type_url: str, snapshot: Snapshot | None, subs: Subscriptions, cache: SetMaker
) -> ResourceSet | None:
    """What the node should hold next for ``type_url``; None: nothing to send yet."""
    if snapshot is None or not subs[type_url].requested:
        return None
    return PLANS[type_url].make(snapshot, subs, cache)
