"""The ADS gRPC service: SotW and delta streams, served as pre-serialised bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.cache import SnapshotCache
from xds_server.xds.delta import DeltaStream
from xds_server.xds.sotw import SotwStream
from xds_server.xds.status import NodeRegistry

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


def _raw(response: bytes) -> bytes:
    """Responses are built from pre-serialised fragments; send them as they are."""
    return response


class AggregatedDiscoveryService:
    """Serves ``StreamAggregatedResources`` and ``DeltaAggregatedResources``."""

    def __init__(self, cache: SnapshotCache, registry: NodeRegistry | None = None) -> None:
        self.cache = cache
        self.registry = registry or NodeRegistry()

    async def sotw(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        await SotwStream(self.cache, self.registry, context.peer()).run(requests, context)

    async def delta(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        await DeltaStream(self.cache, self.registry, context.peer()).run(requests, context)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            ADS_SERVICE,
            {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.sotw,
                    request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                    response_serializer=_raw,
                ),
                "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self.delta,
                    request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                    response_serializer=_raw,
                ),
            },
        )
