"""The operator's intent as plain immutable data: services, deployments, policies.

Nothing here does I/O. Operations (``operations.py``) take a ``World`` and
return a new one; the store persists the difference.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum

DEFAULT_SERVICE = "default"
WILDCARD_DOMAIN = "*"


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
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

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
class Picture:
    """Everything that decides where a service's traffic goes at one revision.

    History records a picture before and after each change, and a rollback
    restores one whole: weights, mirrors and which deployment holds each tag.
    """

    policy: TrafficPolicy = field(default_factory=TrafficPolicy)
    bindings: tuple[tuple[str, str], ...] = ()  # (tag, deployment id), sorted by tag

    def holder_of(self, tag: str) -> str | None:
        return dict(self.bindings).get(tag)


@dataclass(frozen=True, slots=True)
class Service:
    """A routed name: the domains it answers, its policy and its revision."""

    name: str
    domains: tuple[str, ...] = ()
    revision: int = 0
    policy: TrafficPolicy = field(default_factory=TrafficPolicy)


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


@dataclass(frozen=True)
class World:
    """All services and deployments. Treat as immutable: operations build new ones."""

    services: dict[str, Service] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)

    def deployments_of(self, service: str) -> list[Deployment]:
        """The service's deployments, oldest first (ids sort by creation time)."""
        return sorted(
            (d for d in self.deployments.values() if d.service == service),
            key=lambda d: d.id,
        )

    def bindings_of(self, service: str) -> tuple[tuple[str, str], ...]:
        return tuple(
            sorted((d.tag, d.id) for d in self.deployments_of(service) if d.tag is not None)
        )

    def picture_of(self, service: str) -> Picture:
        return Picture(policy=self.services[service].policy, bindings=self.bindings_of(service))

    def domain_owner(self, domain: str) -> str | None:
        """The service that answers ``domain``, if any."""
        for service in self.services.values():
            if domain in service.domains:
                return service.name
        return None
