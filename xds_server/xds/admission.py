"""Which node an ADS stream serves: named by its first request, checked, registered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import structlog

from xds_server.errors import ProtocolError
from xds_server.xds.registry import NodeRecord, NodeRegistry, StreamView

log = structlog.get_logger(__name__)

# Kubernetes names reach 253; ids are kept, logged and listed, so no megabytes.
MAX_NODE_NAME = 1024


def admit(
    request: Any, vet: Callable[[str], None], registry: NodeRegistry, view: StreamView
) -> NodeRecord:
    """Register the node a stream's first request names (with
    ``set_node_on_first_message_only`` it comes only there).

    ``vet`` checks the id before the node is registered (certificate match,
    per-identity limit); it, like a missing or oversized name, raises
    ``ProtocolError`` to end the stream.
    """
    node = request.node
    if not node.id:
        raise ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT, "the first request of a stream must carry node.id"
        )
    if max(len(node.id), len(node.cluster)) > MAX_NODE_NAME:
        raise ProtocolError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"node.id and node.cluster must be at most {MAX_NODE_NAME} characters: "
            "they are logged and listed in `xdsctl status`",
        )
    vet(node.id)
    record = registry.connect(node.id, node.cluster, view)
    log.info("xds.connected", node=node.id, peer=view.peer, mode=view.mode)
    return record


def depart(registry: NodeRegistry, record: NodeRecord, view: StreamView) -> None:
    """The stream ended: the node is no longer served by it."""
    registry.disconnect(record, view)
    log.info("xds.disconnected", node=record.node_id, mode=view.mode)
