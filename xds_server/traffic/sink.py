"""The gRPC end of Envoy's MetricsService stats sink: each flush into the windows.

Envoy (``envoy.stat_sinks.metrics_service``) opens one StreamMetrics stream, sends the
node in its first message only, then one message per flush (several with the same
``timestamp_ms`` under ``batch_size``); the server never answers until the stream ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Protocol

import grpc
import structlog
from envoy.config.core.v3 import base_pb2
from google.protobuf.message import DecodeError

from xds_server.auth.node_identity import CertificateNames
from xds_server.envoy_metrics import metrics_service_pb2 as pb
from xds_server.envoy_metrics import metrics_service_pb2_grpc as pb_grpc
from xds_server.traffic.flush import ClusterFlush, read_flush

log = structlog.get_logger(__name__)


class FlushRecorder(Protocol):
    """What takes the flushes: ``TrafficWindows`` itself, or a ``TrafficBook``."""

    def record(self, envoy: str, at: float, clusters: Mapping[str, ClusterFlush]) -> None: ...

    def stream_started(self, envoy: str, at: float) -> None: ...

    def stream_ended(self, envoy: str, at: float) -> None: ...


class MetricsSink(pb_grpc.MetricsServiceServicer):
    """Feeds every flush of every Envoy's sink stream to ``windows``; ``clock`` (seconds,
    the windows' time base) dates a flush that carries no timestamp and the streams.

    A message that cannot be read is logged and counted in ``malformed``; the stream
    goes on.
    """

    def __init__(
        self,
        windows: FlushRecorder,
        clock: Callable[[], float] = time.time,
        verify_nodes: bool = False,
    ) -> None:
        self.windows = windows
        self.clock = clock
        # With mTLS on the xDS port, a stream's node id must be one its client
        # certificate vouches for, as on ADS: else one Envoy could pose as another
        # and skew the figures rollouts are judged by.
        self.verify_nodes = verify_nodes
        self.malformed = 0

    async def StreamMetrics(
        self,
        request_iterator: AsyncIterator[pb.StreamMetricsMessage],
        context: grpc.aio.ServicerContext[pb.StreamMetricsMessage, pb.StreamMetricsResponse],
    ) -> pb.StreamMetricsResponse:
        peer = context.peer()
        node: str | None = None
        messages = 0
        try:
            async for message in request_iterator:
                if node is None:
                    claimed = _node_id(message, peer)
                    if self.verify_nodes:
                        await _check_identity(claimed, context)
                    node = claimed
                    self.windows.stream_started(node, self.clock())
                    log.info("traffic.sink_stream_started", node=node, peer=peer)
                messages += 1
                self._record(node, message)
        finally:
            if node is not None:
                self.windows.stream_ended(node, self.clock())
            log.info("traffic.sink_stream_ended", node=node, peer=peer, messages=messages)
        return pb.StreamMetricsResponse()

    def _record(self, node: str, message: pb.StreamMetricsMessage) -> None:
        try:
            families = message.envoy_metrics
            stamp = _timestamp_ms(message)
            at = stamp / 1000 if stamp else self.clock()
            self.windows.record(node, at, read_flush(families))
        except Exception as error:  # a bad flush costs that flush, never the stream
            self.malformed += 1
            log.warning(
                "traffic.sink_flush_malformed",
                node=node,
                error=type(error).__name__,
                detail=str(error)[:200],
                malformed=self.malformed,
            )


async def _check_identity(
    node: str,
    context: grpc.aio.ServicerContext[pb.StreamMetricsMessage, pb.StreamMetricsResponse],
) -> None:
    """End the stream (PERMISSION_DENIED) unless the client certificate names ``node``."""
    names = CertificateNames.of(context.auth_context())
    if names.vouches_for(node):
        return
    log.warning(
        "traffic.sink_node_impersonation",
        node=node[:200],
        peer=context.peer(),
        certificate=names.describe(),
    )
    await context.abort(
        grpc.StatusCode.PERMISSION_DENIED,
        f"node.id {node[:200]!r} does not match the client certificate ({names.describe()})",
    )


def _node_id(message: pb.StreamMetricsMessage, peer: str) -> str:
    """The node id from the stream's first message; the peer address when it has none."""
    try:
        node = base_pb2.Node.FromString(message.identifier.node)
    except DecodeError:
        log.warning("traffic.sink_node_unreadable", peer=peer)
        return peer
    return str(node.id) or peer


def _timestamp_ms(message: pb.StreamMetricsMessage) -> int:
    """The flush's time: Envoy stamps every metric of a flush alike (0: not stamped)."""
    for family in message.envoy_metrics:
        for metric in family.metric:
            return metric.timestamp_ms
    return 0


def register(server: grpc.aio.Server, sink: MetricsSink) -> None:
    """Serve ``envoy.service.metrics.v3.MetricsService`` from ``sink`` on ``server``."""
    # grpcio-tools writes the _grpc module without annotations.
    pb_grpc.add_MetricsServiceServicer_to_server(sink, server)  # type: ignore[no-untyped-call]
