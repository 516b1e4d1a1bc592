"""The world as a plain document (dicts and lists) and back.

The translator's golden-test inputs are written in this form, and state
export/import can use it too. Loading validates names, endpoints and weights
with the same rules as the operator API, so a hand-written document cannot
describe a world the API would refuse.
"""

from __future__ import annotations

from typing import Any

from xds_server.model.names import (
    parse_endpoint,
    parse_percent,
    validate_dns_label,
    validate_domain,
)
from xds_server.model.operations import validate_policy
from xds_server.model.state import (
    Deployment,
    DeploymentState,
    Mirror,
    Service,
    TrafficPolicy,
    World,
)


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


def world_from_document(document: dict[str, Any]) -> World:
    """Build a world from ``world_to_document``'s shape, checking every rule."""
    deployments = {}
    for item in document.get("deployments", []):
        deployment = Deployment(
            id=item["id"],
            service=validate_dns_label("service name", item["service"]),
            created_at=item.get("created_at", ""),
            endpoints=tuple(parse_endpoint(text) for text in item["endpoints"]),
            labels=tuple((item.get("labels") or {}).items()),
            tag=validate_dns_label("tag", item["tag"]) if item.get("tag") else None,
            state=DeploymentState(item.get("state", DeploymentState.ACTIVE.value)),
        )
        deployments[deployment.id] = deployment
    services = {}
    for item in document.get("services", []):
        name = validate_dns_label("service name", item["name"])
        policy = TrafficPolicy(
            weights=tuple((item.get("weights") or {}).items()),
            mirrors=tuple(
                Mirror(tag=tag, hundredths=parse_percent(tag, str(percent)))
                for tag, percent in (item.get("mirrors") or {}).items()
            ),
        )
        if policy.weights:
            held = (d.tag for d in deployments.values() if d.service == name and d.tag)
            validate_policy(policy, held, name)
        services[name] = Service(
            name=name,
            domains=tuple(validate_domain(domain) for domain in item.get("domains", [])),
            revision=item.get("revision", 0),
            policy=policy,
        )
    return World(services=services, deployments=deployments)
