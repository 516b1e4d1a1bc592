"""The rules every stored world keeps, whichever way it came in.

Operations keep them by construction. ``world_problems`` checks them again
for what arrives another way (a state import, the state file at start-up)
and, for the services a change touched, as the store's last check before it
writes (on every replica's writes, so no replica loads a world that breaks
them from another). A world without problems translates
into a snapshot Envoy accepts: every listed tag is held by an active
deployment with endpoints, every active deployment holds a listed tag, and
no domain belongs to two services.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from xds_server.errors import InvalidRequest
from xds_server.ids import is_deployment_id
from xds_server.model.names import (
    validate_dns_label,
    validate_domain,
    validate_endpoint,
    validate_endpoints,
    validate_labels,
)
from xds_server.model.policy import routing_problems, validate_policy
from xds_server.model.state import Deployment, DeploymentState, Endpoint, Service, World


class Subject(StrEnum):
    SERVICE = "service"
    DEPLOYMENT = "deployment"


@dataclass(frozen=True)
class Problem:
    """One broken rule, and what it is about (a service's name or a deployment's id)."""

    subject: Subject
    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.subject} {self.name}: {self.message}"


@dataclass(frozen=True)
class WorldDiff:
    """What a change did to the world, row by row (the store writes exactly this)."""

    services: tuple[Service, ...]  # new or changed
    deployments: tuple[Deployment, ...]  # new or changed
    removed_deployments: tuple[Deployment, ...]

    @property
    def touched_services(self) -> set[str]:
        """Every service whose rules the change may have broken."""
        return {
            *(s.name for s in self.services),
            *(d.service for d in (*self.deployments, *self.removed_deployments)),
        }


def world_diff(before: World, after: World, services: Iterable[str] | None = None) -> WorldDiff:
    """The rows that differ; only among ``services`` and their deployments when given (what
    a change says it touched), else across the whole world."""
    if services is None:
        names: Iterable[str] = sorted(after.services)
        old_ids: Iterable[str] = sorted(before.deployments)
        new_ids: Iterable[str] = sorted(after.deployments)
    else:
        names = sorted(set(services))
        old_ids = sorted(i for n in names for i in before.index.by_service.get(n, ()))
        new_ids = sorted(i for n in names for i in after.index.by_service.get(n, ()))
    return WorldDiff(
        services=tuple(
            after.services[n]
            for n in names
            if n in after.services and before.services.get(n) != after.services[n]
        ),
        deployments=tuple(
            after.deployments[i]
            for i in new_ids
            if before.deployments.get(i) != after.deployments[i]
        ),
        removed_deployments=tuple(
            before.deployments[i] for i in old_ids if i not in after.deployments
        ),
    )


def summary(problems: Sequence[object], shown: int = 10) -> str:
    """The first ``shown`` problems in one line, and how many more there are."""
    more = len(problems) - shown
    return "; ".join(str(p) for p in problems[:shown]) + (f"; and {more} more" if more > 0 else "")


def world_problems(world: World, services: Iterable[str] | None = None) -> list[Problem]:
    """Every broken rule of ``services`` (default: all) and their deployments.

    Linear in what is checked: the world's indexes give each service's
    deployments and each domain's services.
    """
    problems: list[Problem] = []
    if services is None:
        names = sorted(world.services)
        for deployment_id, deployment in world.deployments.items():
            if deployment.id != deployment_id:
                problems.append(_misfiled(deployment_id, deployment))
    else:
        names = sorted(set(services))
    owners = world.index.domain_owners
    for name in names:
        deployments = world.deployments_of(name)
        service = world.services.get(name)
        if service is None:
            problems += [_orphan(d) for d in deployments]
            continue
        found = _service_problems(name, service, deployments, owners)
        problems += [Problem(Subject.SERVICE, name, message) for message in found]
        tags: dict[str, str] = {}
        for deployment in deployments:
            problems += [
                Problem(Subject.DEPLOYMENT, deployment.id, message)
                for message in _deployment_problems(service, deployment, tags)
            ]
    if services is None:
        known = set(world.services)
        problems += [
            _orphan(d)
            for n, ids in sorted(world.index.by_service.items())
            if n not in known
            for d in (world.deployments[i] for i in ids)
        ]
    return problems


def _misfiled(deployment_id: str, deployment: Deployment) -> Problem:
    return Problem(Subject.DEPLOYMENT, deployment_id, f"is filed under id {deployment.id}")


def _orphan(deployment: Deployment) -> Problem:
    return Problem(
        Subject.DEPLOYMENT,
        deployment.id,
        f"belongs to service {deployment.service!r}, which does not exist",
    )


def _rule(check: Callable[[], object]) -> list[str]:
    """The problems a model validator raises, as a list (empty when it passes)."""
    try:
        check()
    except InvalidRequest as error:
        return error.problems
    return []


def _service_problems(
    name: str,
    service: Service,
    deployments: list[Deployment],
    owners: Mapping[str, tuple[str, ...]],
) -> list[str]:
    problems = _rule(lambda: validate_dns_label("service name", name))
    if service.name != name:
        problems.append(f"is filed under name {name} but called {service.name!r}")
    if type(service.revision) is not int or service.revision < 0:
        problems.append(f"revision must be a whole number, 0 or more (got {service.revision!r})")
    problems += _domain_problems(service, owners)
    problems += routing_problems(service.routing, as_flags=False)
    policy = service.policy
    if policy.weights:
        held = [d.tag for d in deployments if d.tag is not None]
        problems += _rule(lambda: validate_policy(policy, held, name))
    elif policy.mirrors:
        problems.append("has mirrors but no weights: mirror targets must be listed in the weights")
    return problems


def _domain_problems(service: Service, owners: Mapping[str, tuple[str, ...]]) -> list[str]:
    problems: list[str] = []
    for domain in dict.fromkeys(service.domains):
        try:
            if validate_domain(domain) != domain:
                problems.append(f"domain {domain} must be written in lowercase")
        except InvalidRequest as error:
            problems += error.problems
        others = [owner for owner in owners.get(domain, ()) if owner != service.name]
        if others:
            problems.append(
                f"domain {domain} belongs to service {', '.join(others)} too: "
                "a domain belongs to one service"
            )
        if service.domains.count(domain) > 1:
            problems.append(f"domain {domain} is listed twice")
    return problems


def _deployment_problems(
    service: Service, deployment: Deployment, tags: dict[str, str]
) -> list[str]:
    """``tags``: the tags seen so far among the service's deployments (tag → id)."""
    problems: list[str] = []
    if not isinstance(deployment.id, str) or not is_deployment_id(deployment.id):
        problems.append("its id is not a deployment id (25 lowercase letters and digits, c...)")
    problems += _rule(lambda: validate_endpoints(deployment.endpoints))
    for endpoint in deployment.endpoints:
        problems += _endpoint_problems(endpoint)
    problems += _rule(lambda: validate_labels(deployment.labels))
    if not isinstance(deployment.created_at, str):
        problems.append(f"created_at must be text (got {deployment.created_at!r})")
    tag = deployment.tag
    if tag is not None:
        problems += _rule(lambda: validate_dns_label("tag", tag))
        if tag in tags:
            problems.append(f"tag {tag} is held by deployment {tags[tag]} too")
        tags.setdefault(tag, deployment.id)
    problems += _state_problems(service, deployment)
    return problems


def _endpoint_problems(endpoint: Endpoint) -> list[str]:
    if not isinstance(endpoint.host, str) or type(endpoint.port) is not int:
        return [f"endpoint {endpoint!r} must be a host name and a whole-number port"]
    try:
        normal = validate_endpoint(endpoint.host, endpoint.port)
    except InvalidRequest as error:
        return error.problems
    return [] if normal == endpoint else [f"endpoint {endpoint} is not in its normal form"]


def _state_problems(service: Service, deployment: Deployment) -> list[str]:
    """Active exactly when it holds a tag the policy lists (``_commit_picture``'s rule)."""
    if not isinstance(deployment.state, DeploymentState):
        return [f"state must be active or scaled_down (got {deployment.state!r})"]
    listed = deployment.tag is not None and deployment.tag in service.policy.tags
    if listed and deployment.state is not DeploymentState.ACTIVE:
        weight = service.policy.weight_of(deployment.tag or "")
        return [
            f"is scaled_down but holds tag {deployment.tag}, which the weights list "
            f"(weight {weight}): make it active, or leave {deployment.tag} out of the weights"
        ]
    if not listed and deployment.state is DeploymentState.ACTIVE:
        why = "has no tag" if deployment.tag is None else f"holds tag {deployment.tag}, unlisted"
        return [f"is active but {why}: mark it scaled_down, or list its tag in the weights"]
    return []
