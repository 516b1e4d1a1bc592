"""The operator's intent as plain immutable data: services, deployments, policies.

Nothing here does I/O. Operations (``operations.py``) take a ``World`` and
return a new one; the store persists the difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

import immutables

from xds_server.model.rollout import Rollout

DEFAULT_SERVICE = "default"
WILDCARD_DOMAIN = "*"
# Mirrored requests carry this header unless the service says otherwise, so an
# upstream can tell a shadow from a real request and skip its side effects.
DEFAULT_SHADOW_HEADER = "x-shadow"


class DeploymentState(StrEnum):
    ACTIVE = "active"
    SCALED_DOWN = "scaled_down"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a deployment listens: an IP address or a DNS name, and a port."""

    host: str
    port: int

    @property
    def is_ip(self) -> bool:
        """Whether the host is an IP address. Hosts are kept in their normal form
        (``validate_endpoint``), where a DNS name has no ``:`` and never ends in an
        all-digit label, so the text tells without parsing (translation asks per
        deployment, thousands of times)."""
        last = self.host.rpartition(".")[2]
        return ":" in self.host or (last.isascii() and last.isdigit())

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Deployment:
    """One released version of a service, reachable at its endpoints."""

    id: str
    service: str
    created_at: str
    endpoints: tuple[Endpoint, ...]
    labels: tuple[tuple[str, str], ...] = ()
    tag: str | None = None
    state: DeploymentState = DeploymentState.SCALED_DOWN


@dataclass(frozen=True, slots=True)
class Mirror:
    """Shadow ``hundredths``/100 percent of a service's requests to ``tag``."""

    tag: str
    hundredths: int

    @property
    def percent(self) -> str:
        """The percentage as the operator wrote it: ``5``, ``0.5``, ``12.25``."""
        whole, fraction = divmod(self.hundredths, 100)
        if fraction == 0:
            return str(whole)
        return f"{whole}.{fraction:02d}".rstrip("0")


@dataclass(frozen=True, slots=True)
class TrafficPolicy:
    """Tag weights (in the operator's order, adding up to 100) and mirrors."""

    weights: tuple[tuple[str, int], ...] = ()
    mirrors: tuple[Mirror, ...] = ()

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(tag for tag, _ in self.weights)

    def weight_of(self, tag: str) -> int | None:
        """The tag's weight, or None when the policy does not list it."""
        return dict(self.weights).get(tag)

    def serving_tags(self) -> list[str]:
        """The tags with the highest weight: one, or several on a tie, or none."""
        if not self.weights:
            return []
        top = max(weight for _, weight in self.weights)
        return [tag for tag, weight in self.weights if weight == top]


@dataclass(frozen=True, slots=True)
class Routing:
    """How a service's requests are matched beyond the weights, and how its shadows look.

    ``override_header``: a request whose value of it names a tag reaches that tag's
    deployment whatever the weights. ``sticky_header``: the split hashes this
    header, so one value always lands on the same tag while the weights hold.
    ``shadow_header``: set to ``1`` on mirrored requests. ``mirror_host_suffix``:
    Envoy appends ``-shadow`` to a shadow's Host.
    """

    override_header: str | None = None
    sticky_header: str | None = None
    shadow_header: str | None = DEFAULT_SHADOW_HEADER
    mirror_host_suffix: bool = True


@dataclass(frozen=True, slots=True)
class Picture:
    """Everything that decides where a service's traffic goes at one revision.

    History records a picture before and after each change, and a rollback
    restores one whole: weights, mirrors, which deployment holds each tag, and
    the routing settings.
    """

    policy: TrafficPolicy = field(default_factory=TrafficPolicy)
    bindings: tuple[tuple[str, str], ...] = ()  # (tag, deployment id), sorted by tag
    routing: Routing = field(default_factory=Routing)

    def holder_of(self, tag: str) -> str | None:
        return dict(self.bindings).get(tag)


@dataclass(frozen=True, slots=True)
class Service:
    """A routed name: the domains it answers, its policy and its revision."""

    name: str
    domains: tuple[str, ...] = ()
    revision: int = 0
    policy: TrafficPolicy = field(default_factory=TrafficPolicy)
    routing: Routing = field(default_factory=Routing)
    # The service's rollout: the running one, or the last one (aborted or completed).
    rollout: Rollout | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One revision of a service: who changed what, and the pictures around it."""

    service: str
    revision: int
    time: str
    actor: str
    command: str
    before: Picture
    after: Picture
    # Why, when the control plane made the change itself (a rollout step, an abort).
    reason: str = ""


K = TypeVar("K")
V = TypeVar("V")


def updated_map(
    base: Mapping[K, V], put: Mapping[K, V], removed: Iterable[K] = ()
) -> Mapping[K, V]:
    """``base`` with ``put`` in and ``removed`` out, as a persistent map (a HAMT: the new
    map shares all but the changed paths with ``base``), so the work and the garbage
    follow the changes, not the size: copying a 20,000-entry dict per change was most
    of what a change cost at 10,000 services."""
    removed = [key for key in removed if key in base]
    if not put and not removed:
        return base
    current = base if isinstance(base, immutables.Map) else immutables.Map(base)
    mutation = current.mutate()
    for key in removed:
        del mutation[key]
    mutation.update(put)
    return mutation.finish()


@dataclass(frozen=True, eq=False)
class World:
    """All services and deployments. Immutable: operations build new ones (``replace``).

    Two indexes, built on first use and carried along by ``replace`` (updated for
    the services a change touches only), make every look-up O(the service):
    each service's deployments, and the service of each domain. The maps are
    persistent (``updated_map``): a change costs what it touched.
    """

    services: Mapping[str, Service] = field(default_factory=dict)
    deployments: Mapping[str, Deployment] = field(default_factory=dict)
    _index: _Index | None = field(default=None, compare=False, repr=False)

    def __eq__(self, other: object) -> bool:
        # By content: one world's maps may be dicts (loaded), another's persistent.
        return (
            isinstance(other, World)
            and dict(self.services) == dict(other.services)
            and dict(self.deployments) == dict(other.deployments)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def index(self) -> _Index:
        if self._index is None:
            object.__setattr__(self, "_index", _Index.of(self))
        assert self._index is not None
        return self._index

    def deployments_of(self, service: str) -> list[Deployment]:
        """The service's deployments, oldest first (ids sort by creation time)."""
        return [self.deployments[i] for i in self.index.by_service.get(service, ())]

    def bindings_of(self, service: str) -> tuple[tuple[str, str], ...]:
        return tuple(
            sorted((d.tag, d.id) for d in self.deployments_of(service) if d.tag is not None)
        )

    def picture_of(self, service: str) -> Picture:
        held = self.services[service]
        return Picture(policy=held.policy, bindings=self.bindings_of(service), routing=held.routing)

    def domain_owner(self, domain: str) -> str | None:
        """The service that answers ``domain``, if any."""
        owners = self.index.domain_owners.get(domain, ())
        return owners[0] if owners else None

    def replace(
        self,
        services: Iterable[Service] = (),
        deployments: Iterable[Deployment] = (),
        removed: Iterable[str] = (),
    ) -> World:
        """This world with these services and deployments put in (by name and id) and
        the ``removed`` deployment ids taken out."""
        # What is already there (the same object) is no change: a weight change
        # re-settles a service's deployments, mostly to what they were.
        put_services = {s.name: s for s in services if self.services.get(s.name) is not s}
        put = {d.id: d for d in deployments if self.deployments.get(d.id) is not d}
        gone = [i for i in removed if i in self.deployments]
        new_services = updated_map(self.services, put_services)
        new_deployments = updated_map(self.deployments, put, gone)
        index = None
        if self._index is not None:
            index = self._index.updated(self, put_services, put, gone)
        return World(new_services, new_deployments, index)


@dataclass(frozen=True, eq=False)
class _Index:
    by_service: Mapping[str, tuple[str, ...]]  # service -> its deployment ids, sorted
    # domain -> the services that list it: one, in a world that keeps the rules.
    domain_owners: Mapping[str, tuple[str, ...]]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Index)
            and dict(self.by_service) == dict(other.by_service)
            and dict(self.domain_owners) == dict(other.domain_owners)
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def of(cls, world: World) -> _Index:
        grouped: dict[str, list[str]] = {}
        for deployment_id in sorted(world.deployments):
            service = world.deployments[deployment_id].service
            grouped.setdefault(service, []).append(deployment_id)
        owners: dict[str, tuple[str, ...]] = {}
        for held in sorted(world.services.values(), key=lambda s: s.name):
            for domain in dict.fromkeys(held.domains):
                owners[domain] = (*owners.get(domain, ()), held.name)
        return cls({k: tuple(v) for k, v in grouped.items()}, owners)

    def updated(
        self,
        old: World,
        services: Mapping[str, Service],
        deployments: Mapping[str, Deployment],
        gone: list[str],
    ) -> _Index:
        """The index after ``old.replace(...)``: redone for the services it touched only."""
        changed: dict[str, set[str]] = {}

        def ids(service: str) -> set[str]:
            if service not in changed:
                changed[service] = set(self.by_service.get(service, ()))
            return changed[service]

        for deployment_id in gone:
            ids(old.deployments[deployment_id].service).discard(deployment_id)
        for deployment in deployments.values():
            before = old.deployments.get(deployment.id)
            if before is not None and before.service == deployment.service:
                continue  # the same deployment, changed in place: its service's ids stay
            if before is not None:
                ids(before.service).discard(deployment.id)
            ids(deployment.service).add(deployment.id)
        by_service = updated_map(self.by_service, {k: tuple(sorted(v)) for k, v in changed.items()})
        moved = [
            s
            for s in services.values()
            if s.domains != getattr(old.services.get(s.name), "domains", ())
        ]
        owners: dict[str, tuple[str, ...]] = {}  # the domains whose owners change
        for service in moved:
            previous = old.services.get(service.name)
            for domain in previous.domains if previous else ():
                held = owners.get(domain, self.domain_owners.get(domain, ()))
                owners[domain] = tuple(s for s in held if s != service.name)
            for domain in dict.fromkeys(service.domains):
                held = owners.get(domain, self.domain_owners.get(domain, ()))
                owners[domain] = tuple(sorted({*held, service.name}))
        emptied = [domain for domain, names in owners.items() if not names]
        kept = {domain: names for domain, names in owners.items() if names}
        return _Index(by_service, updated_map(self.domain_owners, kept, emptied))
