"""Small worlds for protocol and planner tests: one service, named deployments."""

from __future__ import annotations

import itertools

from xds_server.model import operations as ops
from xds_server.model.state import World
from xds_server.model.world_document import world_from_document

NOW = "2026-01-01T00:00:00Z"

BLUE, GREEN, NEW_BLUE = (
    "cblue0000000000000000000a",
    "cgreen000000000000000000a",
    "cblue0000000000000000000b",
)


def world(
    weights: dict[str, int],
    holders: dict[str, str],
    ips: dict[str, str] | None = None,
    untagged: tuple[str, ...] = (),
) -> World:
    """One service `default` on `*`; ``holders`` maps tag → deployment id; ``untagged``
    deployments are scaled down without a tag (as after an in-place release)."""
    ips = ips or {}
    bound = [(tag, deployment_id) for tag, deployment_id in holders.items()]
    return world_from_document(
        {
            "services": [{"name": "default", "domains": ["*"], "weights": weights}],
            "deployments": [
                {
                    "id": deployment_id,
                    "service": "default",
                    "endpoints": [ips.get(deployment_id, "10.0.0.1:80")],
                    "tag": tag,
                    "state": "active" if tag in weights else "scaled_down",
                }
                for tag, deployment_id in [*bound, *((None, d) for d in untagged)]
            ],
        }
    )


def context(actor: str = "t", command: str = "c") -> ops.Context:
    """An operation context at a fixed time whose new ids count up from 1, in the
    25-character form real ids have."""
    counter = itertools.count(1)
    return ops.Context(actor, NOW, command, lambda: f"c{next(counter):024d}")
