"""The ADS gRPC service: SotW and delta streams, served as pre-serialised bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import structlog
from envoy.service.discovery.v3 import discovery_pb2

from xds_server.auth.limits import UNLIMITED, StreamCounter
from xds_server.errors import LimitExceeded
from xds_server.lenient import lenient
from xds_server.xds.cache import SnapshotCache
from xds_server.xds.delta import DeltaMode
from xds_server.xds.gate import NodeGate
from xds_server.xds.registry import NodeRegistry
from xds_server.xds.sotw import SotwMode
from xds_server.xds.stream import AdsStream, StreamMode

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"

log = structlog.get_logger(__name__)


def _raw(response: bytes) -> bytes:
    """Responses are built from pre-serialised fragments; send them as they are."""
    return response


class AggregatedDiscoveryService:
    """Serves ``StreamAggregatedResources`` and ``DeltaAggregatedResources``."""

    def __init__(
        self,
        cache: SnapshotCache,
        registry: NodeRegistry | None = None,
        gate: NodeGate | None = None,
    ) -> None:
        self.cache = cache
        self.registry = registry or NodeRegistry()
        self.gate = gate or NodeGate(StreamCounter(UNLIMITED, "xDS streams"))

    async def _stream(
        self,
        mode: StreamMode[Any],
        requests: AsyncIterator[Any],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> None:
        try:
            lease = self.gate.open(context)
        except LimitExceeded as error:
            log.warning("xds.stream_refused", peer=context.peer(), error=str(error))
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
            return  # abort() raises; this keeps ``lease`` bound below
        try:
            stream = AdsStream(
                mode,
                self.cache,
                self.registry,
                context.peer(),
                self.gate.node_check(lease, context),
            )
            await stream.run(requests, context)
        finally:
            lease.release()

    async def sotw(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await self._stream(SotwMode(), requests, context)

    async def delta(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        await self._stream(DeltaMode(), requests, context)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            ADS_SERVICE,
            {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.sotw,
                    request_deserializer=lenient(discovery_pb2.DiscoveryRequest),
                    response_serializer=_raw,
                ),
                "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.delta,
                    request_deserializer=lenient(discovery_pb2.DeltaDiscoveryRequest),
                    response_serializer=_raw,
                ),
            },
        )
