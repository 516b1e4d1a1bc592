"""Test helpers for users and for our own tests: a scripted ADS client, and a wait for
an ``xdsctl serve`` process to be ready.

``ScriptedAdsClient`` speaks SotW or delta ADS one message at a time, so a
test can play Envoy exactly (ACK, NACK, stale nonces, reconnects) or play a
broken client. It decodes the resources it receives into Envoy messages.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.rpc import status_pb2

from xds_server.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE

MESSAGE_TYPES = {
    CLUSTER: cluster_pb2.Cluster,
    ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
    LISTENER: listener_pb2.Listener,
    ROUTE: route_pb2.RouteConfiguration,
}


@dataclass
class Received:
    """One response, decoded: version, nonce, resources by name, removed names."""

    type_url: str
    version: str
    nonce: str
    resources: dict[str, Any]
    removed: list[str]


def _decode(type_url: str, packed: Any) -> Any:
    message = MESSAGE_TYPES[type_url]()
    packed.Unpack(message)
    return message


class ScriptedAdsClient:
    """One ADS stream to a server, driven request by request."""

    def __init__(self, address: str, node_id: str = "test-node", *, delta: bool = False) -> None:
        self.address = address
        self.node = base_pb2.Node(id=node_id, cluster="test")
        self.delta = delta
        self._channel: grpc.aio.Channel | None = None
        self._call: Any = None
        self._sent_node = False
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ScriptedAdsClient:
        self._channel = grpc.aio.insecure_channel(self.address)
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(self._channel)
        method = stub.DeltaAggregatedResources if self.delta else stub.StreamAggregatedResources
        self._call = method()
        self._responses: asyncio.Queue[Any] = asyncio.Queue()
        # One reader for the stream's life: cancelling a pending read would
        # cancel the whole call, so receive() waits on this queue instead.
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            while True:
                response = await self._call.read()
                await self._responses.put(response)
                if response is grpc.aio.EOF:
                    return
        except (grpc.aio.AioRpcError, asyncio.CancelledError) as error:
            await self._responses.put(error)

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._call is not None:
            self._call.cancel()
        if self._channel is not None:
            await self._channel.close()

    def _node(self, with_node: bool | None) -> base_pb2.Node | None:
        """The node goes in the first message only (Envoy's set_node_on_first_message_only)."""
        send = (not self._sent_node) if with_node is None else with_node
        self._sent_node = True
        return self.node if send else None

    async def _send(self, request: Any, with_node: bool | None, error: str) -> None:
        node = self._node(with_node)
        if node is not None:
            request.node.CopyFrom(node)
        if error:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        await self._call.write(request)

    async def request(
        self,
        type_url: str,
        names: list[str] | None = None,
        *,
        version: str = "",
        nonce: str = "",
        error: str = "",
        with_node: bool | None = None,
    ) -> None:
        """Send a SotW DiscoveryRequest (an ACK when ``nonce`` is set, a NACK with ``error``)."""
        assert not self.delta
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            resource_names=names or [],
            version_info=version,
            response_nonce=nonce,
        )
        await self._send(request, with_node, error)

    async def delta_request(
        self,
        type_url: str,
        subscribe: list[str] | None = None,
        unsubscribe: list[str] | None = None,
        *,
        initial_versions: dict[str, str] | None = None,
        nonce: str = "",
        error: str = "",
        with_node: bool | None = None,
    ) -> None:
        """Send a DeltaDiscoveryRequest."""
        assert self.delta
        request = discovery_pb2.DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=subscribe or [],
            resource_names_unsubscribe=unsubscribe or [],
            initial_resource_versions=initial_versions or {},
            response_nonce=nonce,
        )
        await self._send(request, with_node, error)

    async def receive(self, timeout: float = 5.0) -> Received:
        """The next response; raises TimeoutError if none comes in time."""
        response = await asyncio.wait_for(self._responses.get(), timeout)
        if isinstance(response, BaseException):
            raise response
        if response is grpc.aio.EOF:
            raise EOFError("the server ended the stream")
        if self.delta:
            return Received(
                type_url=response.type_url,
                version=response.system_version_info,
                nonce=response.nonce,
                resources={
                    r.name: _decode(response.type_url, r.resource) for r in response.resources
                },
                removed=list(response.removed_resources),
            )
        resources = [_decode(response.type_url, r) for r in response.resources]
        return Received(
            type_url=response.type_url,
            version=response.version_info,
            nonce=response.nonce,
            resources={_name(m): m for m in resources},
            removed=[],
        )

    async def expect_silence(self, seconds: float = 0.3) -> None:
        """Assert that no response arrives for ``seconds``."""
        try:
            response = await self.receive(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected no response, got {response.type_url} {response.version}")

    async def ack(self, received: Received, names: list[str] | None = None) -> None:
        """ACK a response the way Envoy does."""
        if self.delta:
            await self.delta_request(received.type_url, nonce=received.nonce)
        else:
            await self.request(
                received.type_url, names, version=received.version, nonce=received.nonce
            )


def _name(message: Any) -> str:
    return (
        message.cluster_name
        if isinstance(message, endpoint_pb2.ClusterLoadAssignment)
        else message.name
    )


def wait_for_readyz(
    process: subprocess.Popen[Any], metrics_address: str, log: Path, timeout: float = 20.0
) -> None:
    """Wait until an ``xdsctl serve`` process answers 200 on /readyz (which needs no
    credential, whatever the API's); raise with its log if it exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"xdsctl serve exited early:\n{log.read_text()}")
        try:
            url = f"http://{metrics_address}/readyz"
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)
