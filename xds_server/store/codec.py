"""JSON encodings of model values for storage columns (shared by every store)."""

from __future__ import annotations

import json
from typing import Any

from xds_server.model.rollout import Rollout
from xds_server.model.rollout_document import rollout_from_document, rollout_to_document
from xds_server.model.state import Endpoint, Mirror, Picture, Routing, TrafficPolicy
from xds_server.model.world_document import routing_to_document


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _rows(pairs: tuple[tuple[Any, Any], ...]) -> list[list[Any]]:
    return [list(pair) for pair in pairs]


def encode_pairs(pairs: tuple[tuple[Any, Any], ...]) -> str:
    """Ordered key/value pairs (weights, labels) as a JSON list of pairs."""
    return _dumps(_rows(pairs))


def decode_pairs(text: str) -> tuple[tuple[Any, Any], ...]:
    return tuple((key, value) for key, value in json.loads(text))


def encode_endpoints(endpoints: tuple[Endpoint, ...]) -> str:
    return encode_pairs(tuple((e.host, e.port) for e in endpoints))


def decode_endpoints(text: str) -> tuple[Endpoint, ...]:
    return tuple(Endpoint(host=host, port=port) for host, port in decode_pairs(text))


def encode_mirrors(mirrors: tuple[Mirror, ...]) -> str:
    return encode_pairs(tuple((m.tag, m.hundredths) for m in mirrors))


def decode_mirrors(text: str) -> tuple[Mirror, ...]:
    return tuple(Mirror(tag=tag, hundredths=h) for tag, h in decode_pairs(text))


def encode_routing(routing: Routing) -> str:
    return _dumps(routing_to_document(routing))


def decode_routing(text: str) -> Routing:
    """Rows and pictures written before routing settings existed hold none: the defaults."""
    return _routing(json.loads(text) if text else {})


def _routing(data: dict[str, Any]) -> Routing:
    return Routing(**data)


def encode_rollout(rollout: Rollout | None) -> str:
    return "" if rollout is None else _dumps(rollout_to_document(rollout))


def decode_rollout(text: str) -> Rollout | None:
    """'' (no rollout yet, or a row from before rollouts): None."""
    return rollout_from_document(json.loads(text)) if text else None


def encode_picture(picture: Picture) -> str:
    return _dumps(
        {
            "weights": _rows(picture.policy.weights),
            "mirrors": [[m.tag, m.hundredths] for m in picture.policy.mirrors],
            "bindings": _rows(picture.bindings),
            "routing": routing_to_document(picture.routing),
        }
    )


def decode_picture(text: str) -> Picture:
    data = json.loads(text)
    policy = TrafficPolicy(
        weights=tuple((tag, weight) for tag, weight in data["weights"]),
        mirrors=tuple(Mirror(tag=tag, hundredths=h) for tag, h in data["mirrors"]),
    )
    return Picture(
        policy=policy,
        bindings=tuple((t, d) for t, d in data["bindings"]),
        routing=_routing(data.get("routing", {})),
    )


def encode_names(names: list[str]) -> str:
    return _dumps(names)


def decode_names(text: str) -> list[str]:
    return [str(name) for name in json.loads(text)]
