"""The world → Envoy resources: a pure function over small builders.

One HTTP listener takes its routes over RDS; one RouteConfiguration holds a
virtual host per routed service, whose ``/`` route splits traffic with
``weighted_clusters`` and shadows it with ``request_mirror_policies``; each
active deployment is one Cluster (EDS when all its endpoints are IP
addresses, STRICT_DNS otherwise) and, for EDS, one ClusterLoadAssignment.
Versions, nodes and ordering are the snapshot cache's business, not this one's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from xds_server.model.state import (
    Deployment,
    DeploymentState,
    Endpoint,
    Mirror,
    Routing,
    Service,
    World,
)

LISTENER_NAME = "http"
ROUTE_CONFIG_NAME = "routes"
HTTP_STAT_PREFIX = "ingress_http"


@dataclass(frozen=True)
class TranslateOptions:
    """Settings that come from the server's flags, not from the world."""

    listen_host: str = "0.0.0.0"
    listen_port: int = 10000


@dataclass(frozen=True)
class EnvoyResources:
    """Everything one world becomes, each list sorted by resource name."""

    listeners: tuple[listener_pb2.Listener, ...]
    routes: tuple[route_pb2.RouteConfiguration, ...]
    clusters: tuple[cluster_pb2.Cluster, ...]
    endpoints: tuple[endpoint_pb2.ClusterLoadAssignment, ...]


@dataclass(frozen=True)
class StandbyResources:
    """Clusters (and EDS assignments) of scaled-down deployments.

    Not part of the desired config, but kept at hand for an Envoy whose live
    routes may still use them, so it is never made to drop a routed cluster.
    """

    clusters: tuple[cluster_pb2.Cluster, ...]
    endpoints: tuple[endpoint_pb2.ClusterLoadAssignment, ...]


def cluster_name(service: str, deployment_id: str) -> str:
    """A deployment's cluster name: stable, unique, and readable in Envoy's stats."""
    return f"{service}_{deployment_id}"


def parse_cluster_name(name: str) -> tuple[str, str] | None:
    """(service, deployment id) of a name ``cluster_name`` made, None for any other
    (service names are DNS labels, so the first ``_`` separates the two)."""
    service, separator, deployment_id = name.partition("_")
    return (service, deployment_id) if separator and service and deployment_id else None


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3,
    )


def _socket_address(endpoint: Endpoint) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=endpoint.host, port_value=endpoint.port)
    )


def build_listener(options: TranslateOptions) -> listener_pb2.Listener:
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=HTTP_STAT_PREFIX,
        rds=hcm_pb2.Rds(route_config_name=ROUTE_CONFIG_NAME, config_source=_ads_source()),
        # Host "shop.example.com:10000" must match domain "shop.example.com".
        strip_any_host_port=True,
        http_filters=[
            hcm_pb2.HttpFilter(
                name="envoy.filters.http.router", typed_config=_packed(router_pb2.Router())
            )
        ],
    )
    return listener_pb2.Listener(
        name=LISTENER_NAME,
        address=_socket_address(Endpoint(host=options.listen_host, port=options.listen_port)),
        filter_chains=[
            listener_components_pb2.FilterChain(
                filters=[
                    listener_components_pb2.Filter(
                        name="envoy.filters.network.http_connection_manager",
                        typed_config=_packed(manager),
                    )
                ]
            )
        ],
    )


def build_mirror_policy(
    service: str, holders: dict[str, str], mirror: Mirror, routing: Routing
) -> route_components_pb2.RouteAction.RequestMirrorPolicy:
    """A shadow share; whole percents over HUNDRED, two decimals over TEN_THOUSAND.

    Shadows carry the service's shadow header (``1``) so an upstream can skip side
    effects; the primary request is never touched.
    """
    whole = mirror.hundredths % 100 == 0
    fraction = percent_pb2.FractionalPercent(
        numerator=mirror.hundredths // 100 if whole else mirror.hundredths,
        denominator=(
            percent_pb2.FractionalPercent.HUNDRED
            if whole
            else percent_pb2.FractionalPercent.TEN_THOUSAND
        ),
    )
    policy = route_components_pb2.RouteAction.RequestMirrorPolicy(
        cluster=cluster_name(service, holders[mirror.tag]),
        runtime_fraction=base_pb2.RuntimeFractionalPercent(default_value=fraction),
        disable_shadow_host_suffix_append=not routing.mirror_host_suffix,
    )
    if routing.shadow_header is not None:
        policy.request_headers_mutations.append(
            mutation_rules_pb2.HeaderMutation(
                append=base_pb2.HeaderValueOption(
                    header=base_pb2.HeaderValue(key=routing.shadow_header, value="1"),
                    append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
                )
            )
        )
    return policy


def build_override_route(
    service: str, header: str, tag: str, deployment_id: str
) -> route_components_pb2.Route:
    """Requests whose ``header`` is exactly ``tag`` go to the tag's deployment, weight or not."""
    match = route_components_pb2.RouteMatch(
        prefix="/",
        headers=[
            route_components_pb2.HeaderMatcher(
                name=header, string_match=string_pb2.StringMatcher(exact=tag)
            )
        ],
    )
    action = route_components_pb2.RouteAction(cluster=cluster_name(service, deployment_id))
    return route_components_pb2.Route(name=f"{service}-{tag}-override", match=match, route=action)


def build_virtual_host(
    service: Service, holders: dict[str, str]
) -> route_components_pb2.VirtualHost:
    """A routed service: its domains and, once it has traffic, one weighted ``/`` route,
    preceded by one route per tag when the service has an override header.

    ``holders`` maps each tag to the deployment that holds it. A service
    without a policy yet has no route, so its hosts get 404. Clusters are listed
    by tag name, never by typed order or weight: Envoy picks a sticky request's
    cluster by walking the list, so a stable order keeps sticky users in place.
    """
    host = route_components_pb2.VirtualHost(name=service.name, domains=list(service.domains))
    if not service.policy.weights:
        return host
    routing = service.routing
    if routing.shadow_header is not None:
        # A client's own copy is dropped, so the header marks Envoy's shadows only and an
        # upstream can trust it; the mirror policy sets it on each shadow.
        host.request_headers_to_remove.append(routing.shadow_header)
    listed = sorted(service.policy.weights)
    if routing.override_header is not None:
        host.routes.extend(
            build_override_route(service.name, routing.override_header, tag, holders[tag])
            for tag, _ in listed
        )
    weighted = route_components_pb2.WeightedCluster(
        # Every weight is explicit (Envoy NACKs a missing one); total_weight is
        # deprecated and never set.
        clusters=[
            route_components_pb2.WeightedCluster.ClusterWeight(
                name=cluster_name(service.name, holders[tag]), weight={"value": weight}
            )
            for tag, weight in listed
        ]
    )
    if routing.sticky_header is not None:
        weighted.use_hash_policy.value = True
    action = route_components_pb2.RouteAction(
        weighted_clusters=weighted,
        request_mirror_policies=[
            build_mirror_policy(service.name, holders, m, routing) for m in service.policy.mirrors
        ],
    )
    if routing.sticky_header is not None:
        action.hash_policy.append(
            route_components_pb2.RouteAction.HashPolicy(
                header=route_components_pb2.RouteAction.HashPolicy.Header(
                    header_name=routing.sticky_header
                )
            )
        )
    host.routes.append(
        route_components_pb2.Route(match=route_components_pb2.RouteMatch(prefix="/"), route=action)
    )
    return host


def build_route_configuration(world: World) -> route_pb2.RouteConfiguration:
    """One table for every service that answers a domain (404 for any other Host)."""
    hosts = []
    for service in sorted(world.services.values(), key=lambda s: s.name):
        if service.domains:
            holders = holders_of(world.deployments_of(service.name))
            hosts.append(build_virtual_host(service, holders))
    return route_pb2.RouteConfiguration(name=ROUTE_CONFIG_NAME, virtual_hosts=hosts)


def _lb_endpoints(endpoints: Iterable[Endpoint]) -> endpoint_components_pb2.LocalityLbEndpoints:
    return endpoint_components_pb2.LocalityLbEndpoints(
        lb_endpoints=[
            endpoint_components_pb2.LbEndpoint(
                endpoint=endpoint_components_pb2.Endpoint(address=_socket_address(e))
            )
            for e in endpoints
        ]
    )


def build_load_assignment(deployment: Deployment) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name(deployment.service, deployment.id),
        endpoints=[_lb_endpoints(deployment.endpoints)],
    )


def uses_eds(deployment: Deployment) -> bool:
    """EDS when every endpoint is an IP address; DNS names need STRICT_DNS."""
    return all(e.is_ip for e in deployment.endpoints)


def build_cluster(deployment: Deployment) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=cluster_name(deployment.service, deployment.id))
    if uses_eds(deployment):
        cluster.type = cluster_pb2.Cluster.EDS
        cluster.eds_cluster_config.eds_config.CopyFrom(_ads_source())
    else:
        cluster.type = cluster_pb2.Cluster.STRICT_DNS
        # With the default family, localhost resolved to [::1] and every request failed.
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
        cluster.load_assignment.CopyFrom(build_load_assignment(deployment))
    return cluster


def translate(world: World, options: TranslateOptions | None = None) -> EnvoyResources:
    """The complete Envoy configuration for ``world``; never partial.

    A world without deployments still yields the listener and an empty route
    table, so a fresh install serves 404s rather than nothing.
    """
    options = options or TranslateOptions()
    active = _deployments(world, active=True)
    return EnvoyResources(
        listeners=(build_listener(options),),
        routes=(build_route_configuration(world),),
        clusters=tuple(build_cluster(d) for d in active),
        endpoints=tuple(build_load_assignment(d) for d in active if uses_eds(d)),
    )


def translate_standby(world: World) -> StandbyResources:
    """Clusters for every scaled-down deployment that still exists."""
    standby = _deployments(world, active=False)
    return StandbyResources(
        clusters=tuple(build_cluster(d) for d in standby),
        endpoints=tuple(build_load_assignment(d) for d in standby if uses_eds(d)),
    )


def _deployments(world: World, *, active: bool) -> list[Deployment]:
    """Active (or scaled-down) deployments, sorted by cluster name."""
    chosen = (
        d for d in world.deployments.values() if (d.state is DeploymentState.ACTIVE) == active
    )
    return sorted(chosen, key=lambda d: cluster_name(d.service, d.id))


def host_references(host: route_components_pb2.VirtualHost) -> frozenset[str]:
    """The clusters a virtual host sends traffic or shadows to."""
    names: set[str] = set()
    for entry in host.routes:
        action = entry.route
        names.update(c.name for c in action.weighted_clusters.clusters)
        if action.cluster:
            names.add(action.cluster)
        names.update(p.cluster for p in action.request_mirror_policies)
    return frozenset(names)


def route_references(route: route_pb2.RouteConfiguration) -> frozenset[str]:
    """The clusters a route table sends traffic or shadows to."""
    return frozenset().union(*(host_references(host) for host in route.virtual_hosts))


def holders_of(deployments: Iterable[Deployment]) -> dict[str, str]:
    """Tag → the id of the deployment that holds it."""
    return {d.tag: d.id for d in deployments if d.tag is not None}
