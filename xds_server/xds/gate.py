"""Who may hold an ADS stream: stream limits, and (with mTLS) the node id its certificate names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import structlog

from xds_server.auth.limits import StreamCounter, StreamLease
from xds_server.auth.node_identity import CertificateNames
from xds_server.errors import LimitExceeded, ProtocolError

log = structlog.get_logger(__name__)


class NodeGate:
    """Admits ADS streams: counts them per connection and peer at open; with
    ``verify_nodes`` (a client CA), a node id must be one its certificate vouches for, and
    streams are also counted per certificate. A refusal ends that stream only."""

    def __init__(self, streams: StreamCounter, verify_nodes: bool = False) -> None:
        self.streams = streams
        self.verify_nodes = verify_nodes

    def open(self, context: grpc.aio.ServicerContext[Any, Any]) -> StreamLease:
        """Count a new stream (``LimitExceeded`` when over a limit)."""
        return self.streams.open(context.peer())

    def node_check(
        self, lease: StreamLease, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Callable[[str], None]:
        """The check a stream runs on its node id, before registering the node."""
        names = CertificateNames.of(context.auth_context()) if self.verify_nodes else None

        def admit(node_id: str) -> None:
            if names is not None and not names.vouches_for(node_id):
                log.warning(
                    "xds.node_impersonation",
                    node=node_id[:200],
                    peer=context.peer(),
                    certificate=names.describe(),
                )
                raise ProtocolError(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"node.id {node_id[:200]!r} does not match the client certificate "
                    f"({names.describe()}): give each Envoy the id its certificate names",
                )
            if names is None:
                return  # a claimed node id is no identity to count against
            try:
                lease.add_identity(names.identity)
            except LimitExceeded as error:
                raise ProtocolError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)) from error

        return admit
