"""xDS limits set low: stream floods per connection and per peer, and an oversized
request, are refused with RESOURCE_EXHAUSTED while a real Envoy keeps getting its updates
(the per-identity limit needs certificates: tests/test_xds_mtls.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from tests.support.stack import Stack, wait_until
from xds_server.xds.resources import CLUSTER

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
MAX_MESSAGE = 65536


def _connection(address: str) -> grpc.aio.Channel:
    # A private subchannel pool: each channel is its own TCP connection.
    return grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])


def _first_request(node_id: str, padding: int = 0) -> bytes:
    request = discovery_pb2.DiscoveryRequest(
        type_url=CLUSTER,
        node=base_pb2.Node(id=node_id, cluster="limits"),
        resource_names=["x" * padding] if padding else [],
    )
    return request.SerializeToString()


async def _open(channel: grpc.aio.Channel, node_id: str, padding: int = 0) -> Any:
    """Open an ADS stream and send its first request; returns the call."""
    call = channel.stream_stream(ADS, request_serializer=None, response_deserializer=None)()
    try:
        await call.write(_first_request(node_id, padding))
    except Exception:
        # The gate may refuse the stream before this write lands: the write then
        # fails, and the refusal's status is what ``_outcome`` reads from the call.
        if not call.done():
            raise
    return call


async def _outcome(call: Any, wait: float = 2.0) -> grpc.StatusCode | str:
    """RESOURCE_EXHAUSTED etc. if the stream ended; "open" if it answered and lives on."""
    try:
        response = await asyncio.wait_for(call.read(), wait)
    except grpc.aio.AioRpcError as error:
        return error.code()
    except TimeoutError:
        return "open"
    return "open" if response is not grpc.aio.EOF else "ended"


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, delta=False)
    stack.upstream("blue")
    stack.upstream("green")
    stack.start_server(
        (
            "--xds-max-streams-per-connection",
            "2",
            "--xds-max-streams-per-peer",
            "4",
            "--xds-max-streams-per-identity",
            "1",
            "--xds-max-message-bytes",
            str(MAX_MESSAGE),
        )
    )
    yield stack
    stack.close()


def test_floods_and_oversized_requests_are_refused(limited: Stack) -> None:
    stack = limited
    assert stack.server is not None
    stack.xdsctl(
        "apply", "--deployment-tag", "blue", "--endpoint", stack.upstreams["blue"].endpoint
    )
    stack.xdsctl(
        "apply", "--deployment-tag", "green", "--endpoint", stack.upstreams["green"].endpoint
    )
    stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0")
    envoy = stack.start_envoy("envoy-1")  # one stream from 127.0.0.1
    stack.wait_all("blue")
    address = stack.server.xds_address

    async def flood() -> dict[str, Any]:
        first, second = _connection(address), _connection(address)
        outcomes: dict[str, Any] = {}
        try:
            # An oversized request, refused before it is parsed (its stream then ends).
            big = _connection(address)
            outcomes["big"] = await _outcome(await _open(big, "big", padding=MAX_MESSAGE * 2))
            await big.close()
            await asyncio.sleep(0.5)  # the refused stream's handler finishes
            # A node id of kilobytes: refused, never kept or logged.
            long_id = _connection(address)
            outcomes["long"] = await _outcome(await _open(long_id, "n" * 2000))
            await long_id.close()
            await asyncio.sleep(0.5)
            # Per connection (2): the third stream on one connection is refused.
            held = [await _open(first, f"flood-{i}") for i in range(2)]
            outcomes["held"] = [await _outcome(call) for call in held]
            outcomes["third"] = await _outcome(await _open(first, "flood-2"))
            # A node id claimed twice is no identity to limit without mTLS (else anyone
            # could use up a real node's streams): admitted, and held.
            twin = await _open(second, "flood-0")
            outcomes["twin"] = await _outcome(twin)
            # Per peer (4: the Envoy, two held, the twin): the next stream from 127.0.0.1.
            outcomes["fifth"] = await _outcome(await _open(second, "flood-4"))
            return outcomes
        finally:
            await first.close()
            await second.close()

    outcomes = asyncio.run(flood())
    assert outcomes == {
        "big": grpc.StatusCode.RESOURCE_EXHAUSTED,
        "long": grpc.StatusCode.INVALID_ARGUMENT,
        "held": ["open", "open"],
        "third": grpc.StatusCode.RESOURCE_EXHAUSTED,
        "twin": "open",
        "fifth": grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
    log = stack.server.log.read_text()
    assert "--xds-max-streams-per-connection" in log
    assert "--xds-max-streams-per-peer" in log

    # The Envoy kept its stream and still gets every change.
    stack.xdsctl("traffic", "set", "--tags", "blue=0,green=100")
    stack.wait_all("green")
    wait_until(lambda: envoy.route_weights(), what="Envoy routes")
    status = stack.server.xdsctl("status", "-o", "json").json()
    assert [n["node_id"] for n in status["nodes"] if n["connected"]] == ["envoy-1"]
