"""One stream's entries in its node's ACK/NACK record, kept by the node registry.

The record outlives the stream: a version the node rejected is never sent to
it again, on this stream or on the next after a reconnect.
"""

from __future__ import annotations

import time

import structlog

from xds_server.xds.registry import NodeRecord, NodeRegistry
from xds_server.xds.resources import SHORT_NAMES
from xds_server.xds.subscription import Settlement

log = structlog.get_logger(__name__)


class AckLedger:
    """What the stream sent its node, and how the node answered, told to the registry."""

    def __init__(self, registry: NodeRegistry) -> None:
        self.registry = registry
        # The node, once the stream's first request named it.
        self.node: NodeRecord | None = None

    @property
    def node_id(self) -> str:
        """The node's id, for logs; empty before the first request."""
        return self.node.node_id if self.node else ""

    def rejected(self, type_url: str, version: str) -> bool:
        """Whether the node NACKed this very version before (never send it again)."""
        return self.node is not None and version in self.registry.rejected(self.node, type_url)

    def nack_message(self, type_url: str) -> str:
        """Why the node rejected its last rejected version of this type."""
        nack = self.node.last_nack.get(type_url) if self.node else None
        return nack.message if nack else "rejected"

    def sent(self, type_url: str) -> None:
        """A response of this type went out (counted per node)."""
        if self.node is not None:
            self.registry.response(self.node, type_url)

    def settled(self, type_url: str, settled: Settlement) -> None:
        """The node answered a response: record the ACK (with its latency) or the NACK."""
        # A response is pending only once a request named the node.
        assert self.node is not None
        pending = settled.pending
        if settled.error:
            self.registry.nack(self.node, type_url, pending.target.version, settled.error)
            return
        latency = time.time() - pending.published_at
        self.registry.ack(self.node, type_url, pending.target.version, latency)
        log.debug(
            "xds.ack",
            node=self.node_id,
            type=SHORT_NAMES[type_url],
            version=pending.target.version,
            nonce=pending.nonce,
        )
