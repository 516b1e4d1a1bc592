"""The physical limit of the stack: a bare grpcio asyncio ADS server that broadcasts.

It answers each stream's first request with a RouteConfiguration response and,
for every line on stdin, broadcasts one pre-serialised response of the same
size (a new version) to every open stream, printing the monotonic time it
started. Requests after the first (ACKs) are read and dropped.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from xds_server.model.world_document import world_from_document
from xds_server.translate import translate
from xds_server.xds.resources import ROUTE


def _route_response(split: int) -> bytes:
    """Our translator's route table for the benchmark's world, as one SotW response."""
    world = world_from_document(
        {
            "services": [
                {
                    "name": "default",
                    "domains": ["*"],
                    "weights": {"blue": 100 - split, "green": split},
                }
            ],
            "deployments": [
                {
                    "id": f"c{tag:0>24}",
                    "service": "default",
                    "endpoints": ["127.0.0.1:8081"],
                    "tag": tag,
                }
                for tag in ("blue", "green")
            ],
        }
    )
    table = translate(world).routes[0]
    response = discovery_pb2.DiscoveryResponse(
        version_info=str(split), type_url=ROUTE, nonce=str(split)
    )
    response.resources.add().Pack(table)
    return response.SerializeToString()


class Broadcaster:
    def __init__(self) -> None:
        self.streams: set[Any] = set()
        self.current = _route_response(1)

    async def stream(self, requests: Any, context: grpc.aio.ServicerContext) -> None:
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.streams.add(queue)
        reader = asyncio.create_task(self._drain(requests))
        try:
            await context.write(self.current)
            while True:
                await context.write(await queue.get())
        finally:
            self.streams.discard(queue)
            reader.cancel()

    async def _drain(self, requests: Any) -> None:
        async for _request in requests:
            pass

    def broadcast(self, i: int) -> float:
        started = time.monotonic()
        self.current = _route_response(2 + i % 90)
        for queue in self.streams:
            queue.put_nowait(self.current)
        return started


async def main(address: str) -> None:
    broadcaster = Broadcaster()
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "envoy.service.discovery.v3.AggregatedDiscoveryService",
                {
                    "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                        broadcaster.stream,
                        request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                        response_serializer=lambda raw: raw,
                    )
                },
            ),
        )
    )
    server.add_insecure_port(address)
    await server.start()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        print(broadcaster.broadcast(int(line)), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
