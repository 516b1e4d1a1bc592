"""World → snapshot, incrementally: the work of a change follows what changed.

Each service is translated on its own inputs (the service and its
deployments) and the result kept: its virtual host (serialised, and framed as
an entry of the route table), its clusters and their assignments. A change to
one service translates that service only; an unchanged deployment's cluster
and assignment are reused as objects and bytes. The one RouteConfiguration is
assembled from the kept virtual-host bytes (repeated protobuf fields
concatenate on the wire) and versioned from their digests; the sets of
clusters and assignments are derived from the previous ones by the changes
(``ResourceSet.changed``). ``snapshot_of`` builds from scratch with the same
code, which is what the tests compare an incremental build against.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from xds_server.model.state import Deployment, DeploymentState, Endpoint, Service, World
from xds_server.translate import (
    ROUTE_CONFIG_NAME,
    TranslateOptions,
    build_cluster,
    build_listener,
    build_load_assignment,
    build_virtual_host,
    cluster_name,
    holders_of,
    host_references,
    uses_eds,
)
from xds_server.xds.resources import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    ROUTE,
    Resource,
    ResourceSet,
    digest,
    wire_field,
)
from xds_server.xds.snapshot import Snapshot

# A service part's resource lists, each gathered across services into one set.
_KINDS = {
    "clusters": CLUSTER,
    "standby": CLUSTER,
    "endpoints": ENDPOINT,
    "active_endpoints": ENDPOINT,
}
# RouteConfiguration.name is field 1 and virtual_hosts field 2 (route.proto).
_ROUTE_NAME_FIELD = wire_field(1, ROUTE_CONFIG_NAME.encode())
_VIRTUAL_HOSTS = 2


@dataclass(frozen=True)
class _DeploymentResources:
    """A deployment's cluster and, for EDS, its assignment; built from these inputs."""

    inputs: tuple[str, str, tuple[Endpoint, ...]]  # service, id, endpoints
    cluster: Resource
    assignment: Resource | None


@dataclass(frozen=True)
class _ServicePart:
    """What one service contributes to a snapshot, and the inputs it was made from."""

    service: Service
    deployments: tuple[Deployment, ...]
    virtual_host: bytes  # framed as a RouteConfiguration.virtual_hosts entry; b"" if unrouted
    host_digest: bytes
    references: frozenset[str]
    clusters: tuple[Resource, ...]  # of active deployments
    standby: tuple[Resource, ...]  # of scaled-down ones
    endpoints: tuple[Resource, ...]  # assignments of both, for EDS clusters
    active_endpoints: tuple[Resource, ...]  # those of the active ones
    problems: tuple[str, ...]


class Translations:
    """Each service's and deployment's translation, kept while its inputs stay the same.

    A pure memo (one entry per name), so several builders may share it: the
    import check builds a snapshot of a world not yet committed, and publishing
    that world afterwards reuses every translation.
    """

    def __init__(self) -> None:
        self._services: dict[str, _ServicePart] = {}
        self._deployments: dict[str, _DeploymentResources] = {}
        # How many services and deployments were translated (tests count them).
        self.services = 0
        self.deployments = 0

    def part(self, service: Service, deployments: tuple[Deployment, ...]) -> _ServicePart:
        known = self._services.get(service.name)
        if known is not None and known.service == service and known.deployments == deployments:
            return known
        made = self._translate(service, deployments)
        self._services[service.name] = made
        return made

    def retain(self, world: World) -> None:
        """Forget what ``world`` no longer has (deleted deployments, an import's leftovers)."""
        for name in [n for n in self._services if n not in world.services]:
            del self._services[name]
        for deployment_id in [i for i in self._deployments if i not in world.deployments]:
            del self._deployments[deployment_id]

    def forget(self, deployment_ids: Iterable[str]) -> None:
        """Drop deleted deployments' translations."""
        for deployment_id in deployment_ids:
            self._deployments.pop(deployment_id, None)

    def _translate(self, service: Service, deployments: tuple[Deployment, ...]) -> _ServicePart:
        self.services += 1
        built = [self._deployment(d) for d in deployments]
        active = [r for d, r in zip(deployments, built, strict=True) if _is_active(d)]
        standby = [r for d, r in zip(deployments, built, strict=True) if not _is_active(d)]
        host, host_digest, references = b"", b"", frozenset[str]()
        if service.domains:
            message = build_virtual_host(service, holders_of(deployments))
            value = message.SerializeToString(deterministic=True)
            host = wire_field(_VIRTUAL_HOSTS, value)
            host_digest = hashlib.sha256(value).digest()[:16]
            references = host_references(message)
        clusters = tuple(r.cluster for r in active)
        missing = sorted(references - {c.name for c in clusters})
        return _ServicePart(
            service=service,
            deployments=deployments,
            virtual_host=host,
            host_digest=host_digest,
            references=references,
            clusters=clusters,
            standby=tuple(r.cluster for r in standby),
            endpoints=tuple(r.assignment for r in built if r.assignment is not None),
            active_endpoints=tuple(r.assignment for r in active if r.assignment is not None),
            problems=tuple(f"a route uses cluster {n}, which the snapshot lacks" for n in missing),
        )

    def _deployment(self, deployment: Deployment) -> _DeploymentResources:
        """Its cluster and assignment; kept while service, id and endpoints stay the same
        (whether it is active or scaled down does not change them)."""
        inputs = (deployment.service, deployment.id, deployment.endpoints)
        known = self._deployments.get(deployment.id)
        if known is not None and known.inputs == inputs:
            return known
        self.deployments += 1
        name = cluster_name(deployment.service, deployment.id)
        eds = uses_eds(deployment)
        cluster = Resource.build(
            CLUSTER, name, build_cluster(deployment), frozenset({name}) if eds else frozenset()
        )
        assignment = (
            Resource.build(ENDPOINT, name, build_load_assignment(deployment)) if eds else None
        )
        made = _DeploymentResources(inputs, cluster, assignment)
        self._deployments[deployment.id] = made
        return made


class SnapshotBuilder:
    """The snapshot of the world it built last, kept in parts; ``build`` redoes the
    services named as changed only."""

    def __init__(self, options: TranslateOptions, translations: Translations | None = None) -> None:
        listener = build_listener(options)
        self._listeners = ResourceSet.of(
            LISTENER,
            [Resource.build(LISTENER, listener.name, listener, frozenset({ROUTE_CONFIG_NAME}))],
        )
        self.translations = translations or Translations()
        self._parts: dict[str, _ServicePart] = {}
        # The services with a virtual host, by name, and (in that order) their framed
        # hosts and digests: the route table is two joins of these.
        self._routed: list[str] = []
        self._hosts: list[bytes] = []
        self._host_digests: list[bytes] = []
        self._references: set[str] = set()
        # The route table's references, frozen once per change of them (each version
        # of the table shares it while no cluster changes).
        self._frozen_references: frozenset[str] = frozenset()
        self._references_changed = False
        self._sets = {kind: ResourceSet.of(type_url, ()) for kind, type_url in _KINDS.items()}
        self._routes: ResourceSet | None = None
        self._problems: dict[str, tuple[str, ...]] = {}

    def build(self, world: World, changed: Iterable[str] | None = None) -> Snapshot:
        """The snapshot of ``world``, whose ``changed`` services (None: any) may differ
        from the world of the last build."""
        names = {*world.services, *self._parts} if changed is None else set(changed)
        puts: dict[str, dict[str, Resource]] = {kind: {} for kind in _KINDS}
        removals: dict[str, set[str]] = {kind: set() for kind in _KINDS}
        routes_changed = self._routes is None
        for name in sorted(names):
            old = self._parts.get(name)
            service = world.services.get(name)
            new = (
                self.translations.part(service, tuple(world.deployments_of(name)))
                if service is not None
                else None
            )
            if new is old:
                continue
            routes_changed |= self._swap(name, old, new, puts, removals)
        if changed is None:
            self.translations.retain(world)
        for kind, resource_set in self._sets.items():
            self._sets[kind] = resource_set.changed(puts[kind].values(), removals[kind])
        if self._references_changed:
            self._frozen_references = frozenset(self._references)
            self._references_changed = False
        if self._routes is None:
            self._routes = ResourceSet.of(ROUTE, [self._route_table()])
        elif routes_changed:
            # changed(), not of(): the table it replaces stays recognisable (a delta
            # node that reconnects holding it), as every other replaced resource does.
            self._routes = self._routes.changed([self._route_table()])
        return Snapshot(
            listeners=self._listeners,
            routes=self._routes,
            clusters=self._sets["clusters"],
            standby_clusters=self._sets["standby"],
            endpoints=self._sets["endpoints"],
            active_endpoints=self._sets["active_endpoints"],
            checked=tuple(p for found in self._problems.values() for p in found),
        )

    def _swap(
        self,
        name: str,
        old: _ServicePart | None,
        new: _ServicePart | None,
        puts: dict[str, dict[str, Resource]],
        removals: dict[str, set[str]],
    ) -> bool:
        """Put ``new`` in ``old``'s place; whether the route table changed."""
        for kind in _KINDS:
            before = {r.name: r for r in getattr(old, kind, ())}
            after = {r.name: r for r in getattr(new, kind, ())}
            for gone in before.keys() - after.keys():
                removals[kind].add(gone)
                puts[kind].pop(gone, None)
            for resource in after.values():
                if before.get(resource.name) is not resource:
                    puts[kind][resource.name] = resource
                    removals[kind].discard(resource.name)
        if old is not None:
            kept = {d.id for d in new.deployments} if new is not None else set()
            self.translations.forget(d.id for d in old.deployments if d.id not in kept)
        old_references = old.references if old is not None else frozenset()
        new_references = new.references if new is not None else frozenset()
        if old_references != new_references:  # not for a weight change: the same clusters
            self._references -= old_references
            self._references |= new_references
            self._references_changed = True
        if new is not None:
            self._parts[name] = new
        else:
            self._parts.pop(name, None)
        if new is not None and new.problems:
            self._problems[name] = new.problems
        else:
            self._problems.pop(name, None)
        host_before = old.virtual_host if old is not None else b""
        host_after = new.virtual_host if new is not None else b""
        if host_before == host_after:
            return False
        at = bisect.bisect_left(self._routed, name)
        if host_before:
            del self._routed[at], self._hosts[at], self._host_digests[at]
        if new is not None and host_after:
            self._routed.insert(at, name)
            self._hosts.insert(at, host_after)
            self._host_digests.insert(at, new.host_digest)
        return True

    # --- the route table ------------------------------------------------------------

    def _route_table(self) -> Resource:
        """The RouteConfiguration, joined from the kept virtual-host bytes: exactly what
        serialising the whole message would give, versioned from the hosts' digests."""
        value = b"".join([_ROUTE_NAME_FIELD, *self._hosts])  # one copy of megabytes
        version = digest(b"".join([_ROUTE_NAME_FIELD, *self._host_digests]))
        return Resource(ROUTE, ROUTE_CONFIG_NAME, version, value, self._frozen_references)


def _is_active(deployment: Deployment) -> bool:
    return deployment.state is DeploymentState.ACTIVE


def snapshot_of(world: World, options: TranslateOptions) -> Snapshot:
    """The snapshot of a world, built from scratch."""
    return SnapshotBuilder(options).build(world)
