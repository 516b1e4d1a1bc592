"""An immutable snapshot: the desired Envoy config of one world, versioned and serialised.

``xds_server.xds.builder`` makes them, incrementally.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from xds_server.xds.resources import ResourceSet


@dataclass(frozen=True)
class Snapshot:
    """What every Envoy should end up with, plus what a node may still need on the way.

    ``standby_clusters`` are clusters of scaled-down deployments: sent only to a
    node whose live routes may still use them, until it has accepted routes
    that do not. ``endpoints`` holds the assignment of every EDS cluster,
    active or standby, so any EDS request can be answered. ``checked`` is what
    the builder found wrong while building, service by service (None: unknown,
    ``problems`` checks everything).
    """

    listeners: ResourceSet
    routes: ResourceSet
    clusters: ResourceSet
    standby_clusters: ResourceSet
    endpoints: ResourceSet
    # The assignments of the desired (active) EDS clusters: what a node that holds
    # exactly the desired clusters asks for.
    active_endpoints: ResourceSet
    checked: tuple[str, ...] | None = None

    def sets(self) -> tuple[ResourceSet, ...]:
        return (self.clusters, self.listeners, self.routes)

    @functools.cached_property
    def needs_eds(self) -> bool:
        """Whether any desired cluster takes its endpoints over EDS."""
        return any(r.references for r in self.clusters.resources.values())

    def problems(self) -> list[str]:
        """Why this snapshot would break Envoy, if it would (go-control-plane's Consistent)."""
        if self.checked is not None:
            return list(self.checked)
        found = []
        for name in sorted(self.routes.references - self.clusters.names):
            found.append(f"a route uses cluster {name}, which the snapshot lacks")
        for name, cluster in self.clusters.resources.items():
            if cluster.references and name not in self.endpoints.resources:
                found.append(f"EDS cluster {name} has no ClusterLoadAssignment")
        for listener in self.listeners.resources.values():
            for route_name in sorted(listener.references - self.routes.names):
                found.append(f"listener {listener.name} uses route table {route_name}, absent")
        return found
