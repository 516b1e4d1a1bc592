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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from xds_server.xds.resources import Resource, ResourceSet
from xds_server.xds.snapshot import Snapshot

Held = Mapping[str, Resource | None] | None


def live_references(held_routes: Held) -> frozenset[str] | None:
    """The clusters the node's accepted routes use; None when they are unknown."""
    if held_routes is None or any(r is None for r in held_routes.values()):
        return None
    return frozenset().union(*(r.references for r in held_routes.values() if r is not None))


def plan_clusters(snapshot: Snapshot, held_clusters: Held, held_routes: Held) -> list[Resource]:
    """The clusters to hold next: the desired ones, plus those still routed to.

    With the routes unknown, every cluster the node holds is kept; with the
    clusters unknown too, every standby cluster is (a superset of anything a
    node can route to, short of a deleted deployment).
    """
    desired = snapshot.clusters.resources
    standby = snapshot.standby_clusters
    holds = set(standby) if held_clusters is None else set(held_clusters)
    routed = live_references(held_routes)
    keep = holds if routed is None else holds & routed
    extra = [standby[name] for name in sorted(keep - desired.keys()) if name in standby]
    return [*desired.values(), *extra]


def plan_routes(snapshot: Snapshot, held_clusters: Held) -> ResourceSet | None:
    """The desired routes once the node holds (and so has warmed) every cluster they use."""
    if held_clusters is None or not snapshot.routes.references() <= held_clusters.keys():
        return None
    return snapshot.routes


def plan_endpoints(snapshot: Snapshot, names: Iterable[str]) -> list[Resource]:
    """The assignments of the named clusters, active or standby, that exist."""
    return [snapshot.endpoints[name] for name in sorted(set(names)) if name in snapshot.endpoints]
