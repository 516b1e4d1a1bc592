"""What each node has accepted and rejected, kept across its reconnects."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import structlog

from xds_server.xds.resources import SHORT_NAMES

log = structlog.get_logger(__name__)


@dataclass
class Nack:
    version: str
    message: str
    at: float


@dataclass
class NodeRecord:
    """One node's view: the last version it ACKed per type and what it rejected."""

    node_id: str
    cluster: str = ""
    acked: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, set[str]] = field(default_factory=dict)
    last_nack: dict[str, Nack] = field(default_factory=dict)
    streams: int = 0


class NodeRegistry:
    """ACK and NACK records by node id, shared by every stream of that node."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeRecord] = {}

    def connect(self, node_id: str, cluster: str) -> NodeRecord:
        record = self._nodes.setdefault(node_id, NodeRecord(node_id=node_id))
        record.cluster = cluster
        record.streams += 1
        return record

    def disconnect(self, record: NodeRecord) -> None:
        record.streams -= 1

    def get(self, node_id: str) -> NodeRecord | None:
        return self._nodes.get(node_id)

    def ack(self, record: NodeRecord, type_url: str, version: str) -> None:
        record.acked[type_url] = version

    def nack(self, record: NodeRecord, type_url: str, version: str, message: str) -> None:
        """Remember the rejection, so that version is never sent to this node again."""
        record.rejected.setdefault(type_url, set()).add(version)
        record.last_nack[type_url] = Nack(version=version, message=message, at=time.time())
        log.warning(
            "xds.nack",
            node=record.node_id,
            type=SHORT_NAMES.get(type_url, type_url),
            version=version,
            error=message,
        )

    def rejected(self, record: NodeRecord, type_url: str) -> set[str]:
        return record.rejected.get(type_url, set())
