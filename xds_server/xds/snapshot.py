"""An immutable snapshot: the desired Envoy config of one world, versioned and serialised."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from xds_server.model.state import World
from xds_server.translate import (
    EnvoyResources,
    StandbyResources,
    TranslateOptions,
    route_references,
    translate,
    translate_standby,
)
from xds_server.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE, Resource, ResourceSet


@dataclass(frozen=True)
class Snapshot:
    """What every Envoy should end up with, plus what a node may still need on the way.

    ``standby_clusters`` are clusters of scaled-down deployments: sent only to a
    node whose live routes may still use them, until it has accepted routes
    that do not. ``endpoints`` holds the assignment of every EDS cluster,
    active or standby, so any EDS request can be answered.
    """

    listeners: ResourceSet
    routes: ResourceSet
    clusters: ResourceSet
    standby_clusters: Mapping[str, Resource]
    endpoints: Mapping[str, Resource]

    def sets(self) -> tuple[ResourceSet, ...]:
        return (self.clusters, self.listeners, self.routes)

    def problems(self) -> list[str]:
        """Why this snapshot would break Envoy, if it would (go-control-plane's Consistent)."""
        found = []
        for name in sorted(self.routes.references() - self.clusters.names):
            found.append(f"a route uses cluster {name}, which the snapshot lacks")
        for name, cluster in self.clusters.resources.items():
            if cluster.references and name not in self.endpoints:
                found.append(f"EDS cluster {name} has no ClusterLoadAssignment")
        for listener in self.listeners.resources.values():
            for route_name in sorted(listener.references - self.routes.names):
                found.append(f"listener {listener.name} uses route table {route_name}, absent")
        return found


def _clusters(clusters: tuple, endpoints: tuple) -> tuple[list[Resource], list[Resource]]:
    eds = {assignment.cluster_name for assignment in endpoints}
    return (
        [
            # An EDS cluster depends on the assignment of its own name.
            Resource.build(
                CLUSTER, c.name, c, frozenset({c.name}) if c.name in eds else frozenset()
            )
            for c in clusters
        ],
        [Resource.build(ENDPOINT, a.cluster_name, a) for a in endpoints],
    )


def build_snapshot(resources: EnvoyResources, standby: StandbyResources) -> Snapshot:
    """Serialise each resource once and version every set by content."""
    clusters, endpoints = _clusters(resources.clusters, resources.endpoints)
    standby_clusters, standby_endpoints = _clusters(standby.clusters, standby.endpoints)
    listeners = [
        Resource.build(LISTENER, listener.name, listener, _listener_routes(listener))
        for listener in resources.listeners
    ]
    routes = [Resource.build(ROUTE, r.name, r, route_references(r)) for r in resources.routes]
    return Snapshot(
        listeners=ResourceSet.of(LISTENER, listeners),
        routes=ResourceSet.of(ROUTE, routes),
        clusters=ResourceSet.of(CLUSTER, clusters),
        standby_clusters={r.name: r for r in standby_clusters},
        endpoints={r.name: r for r in endpoints + standby_endpoints},
    )


def _listener_routes(listener: listener_pb2.Listener) -> frozenset[str]:
    names = set()
    for chain in listener.filter_chains:
        for network_filter in chain.filters:
            manager = hcm_pb2.HttpConnectionManager()
            if network_filter.typed_config.Unpack(manager) and manager.HasField("rds"):
                names.add(manager.rds.route_config_name)
    return frozenset(names)


def snapshot_of(world: World, options: TranslateOptions) -> Snapshot:
    """The snapshot for a world: translate, then serialise and version."""
    return build_snapshot(translate(world, options), translate_standby(world))
