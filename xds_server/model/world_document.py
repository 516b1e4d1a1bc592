"""The world as a plain document (dicts and lists) and back.

The translator's golden-test inputs are written in this form, and state
export/import uses it too. Loading is strict, in two steps, and every
refusal names where, as a JSON path (``$.world.services[1].weights.blue``):

1. the shape, with pydantic in strict mode: ``true`` is not a weight, 16.5 not
   a revision, and an unknown field is a typo, not something to ignore;
2. the world it describes, with the operator API's own rules: the same
   parsers as the CLI for endpoints, domains and percentages, then every
   whole-world rule (``xds_server.model.invariants``: references, states,
   uniqueness), so a document cannot describe a world the API would refuse.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from xds_server.errors import InvalidRequest
from xds_server.model.invariants import Problem, Subject, world_problems
from xds_server.model.names import parse_endpoint, parse_percent, validate_domain
from xds_server.model.rollout_document import rollout_from_document, rollout_to_document
from xds_server.model.state import (
    DEFAULT_SHADOW_HEADER,
    Deployment,
    DeploymentState,
    Mirror,
    Routing,
    Service,
    TrafficPolicy,
    World,
)

T = TypeVar("T")

# Above any real revision, and inside the 64-bit integers both stores keep.
MAX_REVISION = 2**53


class StrictDocument(BaseModel):
    """A document part: strict types, unknown fields refused."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class RoutingDocument(StrictDocument):
    """A service's routing settings (``Routing``); a header left out or null is off."""

    override_header: str | None = None
    sticky_header: str | None = None
    shadow_header: str | None = DEFAULT_SHADOW_HEADER
    mirror_host_suffix: bool = True

    def routing(self) -> Routing:
        return Routing(
            override_header=self.override_header,
            sticky_header=self.sticky_header,
            shadow_header=self.shadow_header,
            mirror_host_suffix=self.mirror_host_suffix,
        )


def routing_to_document(routing: Routing) -> dict[str, Any]:
    return {
        "override_header": routing.override_header,
        "sticky_header": routing.sticky_header,
        "shadow_header": routing.shadow_header,
        "mirror_host_suffix": routing.mirror_host_suffix,
    }


class ServiceDocument(StrictDocument):
    name: str
    domains: list[str] = []
    revision: int = Field(default=0, ge=0, le=MAX_REVISION)
    weights: dict[str, int] = {}
    # Percentages as written: "5", "0.25" (numbers are taken too, for hand-written YAML).
    mirrors: dict[str, Any] = {}
    routing: RoutingDocument = RoutingDocument()
    # The running or last rollout, as ``rollout_to_document`` writes it.
    rollout: dict[str, Any] | None = None


class DeploymentDocument(StrictDocument):
    id: str
    service: str
    created_at: str = ""
    endpoints: list[str]
    labels: dict[str, str] = {}
    tag: str | None = None
    # Left out: active exactly when the tag is in the service's weights.
    state: Literal["active", "scaled_down"] | None = None


class WorldDocument(StrictDocument):
    services: list[ServiceDocument] = []
    deployments: list[DeploymentDocument] = []


def world_to_document(world: World) -> dict[str, Any]:
    """A JSON/YAML-ready description of every service and deployment."""
    return {
        "services": [
            {
                "name": s.name,
                "domains": list(s.domains),
                "revision": s.revision,
                "weights": dict(s.policy.weights),
                "mirrors": {m.tag: m.percent for m in s.policy.mirrors},
                "routing": routing_to_document(s.routing),
                "rollout": rollout_to_document(s.rollout) if s.rollout else None,
            }
            for s in sorted(world.services.values(), key=lambda s: s.name)
        ],
        "deployments": [
            {
                "id": d.id,
                "service": d.service,
                "created_at": d.created_at,
                "endpoints": [str(e) for e in d.endpoints],
                "labels": dict(d.labels),
                "tag": d.tag,
                "state": d.state.value,
            }
            for d in sorted(world.deployments.values(), key=lambda d: d.id)
        ],
    }


def world_from_document(document: Any) -> World:
    """Build a world from ``world_to_document``'s shape (parsed JSON or YAML)."""
    try:
        parsed = WorldDocument.model_validate(document)
    except ValidationError as error:
        raise InvalidRequest(shape_problems(error)) from error
    return world_from_parsed(parsed, "$")


def shape_problems(
    error: ValidationError, root: str = "$", unshown: tuple[str, ...] = ()
) -> list[str]:
    """pydantic's findings as ``PATH: what is wrong (got VALUE)``; the value is left out
    under the top-level keys ``unshown`` (where a value may be a secret)."""
    found = []
    for item in error.errors():
        hidden = item["type"] == "missing" or (item["loc"] and item["loc"][0] in unshown)
        shown = "" if hidden else f" (got {_shown(item['input'])})"
        found.append(f"{json_path(root, item['loc'])}: {item['msg']}{shown}")
    return found


def json_path(root: str, parts: tuple[int | str, ...]) -> str:
    """``$.world.services[1].weights.blue`` from pydantic's location tuple."""
    path = root
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _located(problems: list[str], where: str, parse: Callable[[], T]) -> T | None:
    """Run a model parser; its refusal becomes a problem at ``where``."""
    try:
        return parse()
    except InvalidRequest as error:
        problems.extend(f"{where}: {problem}" for problem in error.problems)
        return None


def world_from_parsed(parsed: WorldDocument, root: str) -> World:
    """The world a shape-checked document describes, once it passes every rule."""
    problems: list[str] = []
    service_items = _unique(
        parsed.services, lambda s: s.name, f"{root}.services", "list each service once", problems
    )
    services = {
        name: _service(item, where, problems) for name, (item, where) in service_items.items()
    }
    deployment_items = _unique(
        parsed.deployments,
        lambda d: d.id,
        f"{root}.deployments",
        "give each deployment its own id",
        problems,
    )
    deployments = {
        key: _deployment(item, services.get(item.service), where, problems)
        for key, (item, where) in deployment_items.items()
    }
    service_at = {name: where for name, (_item, where) in service_items.items()}
    deployment_at = {key: where for key, (_item, where) in deployment_items.items()}
    world = World(services=services, deployments=deployments)
    if not problems:
        locations = {Subject.SERVICE: service_at, Subject.DEPLOYMENT: deployment_at}
        problems = [_at(locations, problem) for problem in world_problems(world)]
    if problems:
        raise InvalidRequest(problems)
    return world


def _unique(
    items: list[T], key: Callable[[T], str], at: str, fix: str, problems: list[str]
) -> dict[str, tuple[T, str]]:
    """The items by key, each with its JSON path; a key seen twice is a problem."""
    found: dict[str, tuple[T, str]] = {}
    kind = at.rsplit(".", 1)[1].removesuffix("s")
    for index, item in enumerate(items):
        where, name = f"{at}[{index}]", key(item)
        if name in found:
            problems.append(
                f"{where}: {kind} {name} is listed twice (also at {found[name][1]}): {fix}"
            )
            continue
        found[name] = (item, where)
    return found


def _at(locations: dict[Subject, dict[str, str]], problem: Problem) -> str:
    where = locations[problem.subject].get(problem.name, "$")
    return f"{where} ({problem.subject} {problem.name}): {problem.message}"


def _service(item: ServiceDocument, where: str, problems: list[str]) -> Service:
    domains = []
    for index, domain in enumerate(item.domains):
        at = f"{where}.domains[{index}]"
        domains.append(_located(problems, at, functools.partial(validate_domain, domain)) or domain)
    mirrors = []
    for tag, value in item.mirrors.items():
        at = f"{where}.mirrors.{tag}"
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            problems.append(f'{at}: a percentage is text or a number, e.g. "5" (got {value!r})')
            continue
        hundredths = _located(problems, at, functools.partial(parse_percent, tag, str(value)))
        if hundredths is not None:
            mirrors.append(Mirror(tag=tag, hundredths=hundredths))
    return Service(
        name=item.name,
        domains=tuple(domains),
        revision=item.revision,
        policy=TrafficPolicy(weights=tuple(item.weights.items()), mirrors=tuple(mirrors)),
        routing=item.routing.routing(),
        rollout=_located(
            problems, f"{where}.rollout", functools.partial(rollout_from_document, item.rollout)
        )
        if item.rollout is not None
        else None,
    )


def _deployment(
    item: DeploymentDocument, service: Service | None, where: str, problems: list[str]
) -> Deployment:
    endpoints = []
    for index, text in enumerate(item.endpoints):
        at = f"{where}.endpoints[{index}]"
        endpoint = _located(problems, at, functools.partial(parse_endpoint, text))
        if endpoint is not None:
            endpoints.append(endpoint)
    if item.state is not None:
        state = DeploymentState(item.state)
    else:
        listed = service is not None and item.tag in service.policy.tags
        state = DeploymentState.ACTIVE if listed else DeploymentState.SCALED_DOWN
    return Deployment(
        id=item.id,
        service=item.service,
        created_at=item.created_at,
        endpoints=tuple(endpoints),
        labels=tuple(item.labels.items()),
        tag=item.tag,
        state=state,
    )
