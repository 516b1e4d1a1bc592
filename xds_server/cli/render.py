"""How the CLI prints things: YAML and JSON for scripts, tables and lines for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from xds_server.model.state import Endpoint
from xds_server.v1 import operator_pb2 as pb


def percent_value(text: str) -> int | float:
    """``"5"`` → 5, ``"0.25"`` → 0.25: numbers in YAML/JSON, as the operator wrote them."""
    return float(text) if "." in text else int(text)


def traffic_data(traffic: pb.Traffic) -> dict[str, Any]:
    """The shape of ``traffic get``: tags, then mirror (only when set), then revision."""
    data: dict[str, Any] = {
        "tags": [
            {"deployment_id": t.deployment_id, "tag": t.tag, "weight": t.weight}
            for t in traffic.tags
        ]
    }
    if traffic.mirror:
        data["mirror"] = [
            {"deployment_id": m.deployment_id, "tag": m.tag, "percent": percent_value(m.percent)}
            for m in traffic.mirror
        ]
    data["revision"] = traffic.revision
    return data


def deployment_data(deployment: pb.Deployment) -> dict[str, Any]:
    return {
        "id": deployment.id,
        "service": deployment.service,
        "tag": deployment.tag or None,
        "state": deployment.state,
        "endpoints": [endpoint_text(e) for e in deployment.endpoints],
        "labels": {label.key: label.value for label in deployment.labels},
        "created_at": deployment.created_at,
    }


def endpoint_text(endpoint: pb.Endpoint) -> str:
    return str(Endpoint(host=endpoint.host, port=endpoint.port))


def picture_data(picture: pb.Picture) -> dict[str, Any]:
    return {
        "weights": {w.tag: w.weight for w in picture.weights},
        "mirrors": {m.tag: percent_value(m.percent) for m in picture.mirrors},
        "bindings": {b.tag: b.deployment_id for b in picture.bindings},
    }


def history_data(entry: pb.HistoryEntry) -> dict[str, Any]:
    return {
        "revision": entry.revision,
        "time": entry.time,
        "actor": entry.actor,
        "command": entry.command,
        "before": picture_data(entry.before),
        "after": picture_data(entry.after),
    }


def service_data(service: pb.Service) -> dict[str, Any]:
    return {"name": service.name, "domains": list(service.domains), "revision": service.revision}


def structured(data: Any, output: str) -> str:
    """``data`` as YAML or JSON text, ending in a newline."""
    if output == "json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, like kubectl's."""
    cells = [list(headers)] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines) + "\n"


def token_data(info: pb.TokenInfo) -> dict[str, Any]:
    """A token's public facts (there is no secret in TokenInfo to leak)."""
    return {
        "name": info.name,
        "role": info.role,
        "created_at": info.created_at,
        "created_by": info.created_by,
    }
