"""``xdsctl serve``: the control-plane process and its lifecycle.

Start-up order matters: the state is loaded and the first snapshot built
before the xDS port opens, so no Envoy is ever served an empty or partial
config (an empty CDS response would delete all its clusters).
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field

import grpc
import structlog

from xds_server.api.servicer import OperatorServicer
from xds_server.config import ServeConfig
from xds_server.model.names import parse_endpoint
from xds_server.store.sqlite import SqliteStore
from xds_server.translate import TranslateOptions
from xds_server.v1 import operator_pb2_grpc
from xds_server.xds import keepalive
from xds_server.xds.cache import SnapshotCache
from xds_server.xds.publisher import SnapshotPublisher
from xds_server.xds.service import AggregatedDiscoveryService
from xds_server.xds.status import NodeRegistry

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
# An Envoy request is a few KB; anything near this is hostile and refused
# (RESOURCE_EXHAUSTED) before it is parsed.
XDS_LIMITS = [("grpc.max_receive_message_length", 4 * 1024 * 1024)]


def translate_options(config: ServeConfig) -> TranslateOptions:
    endpoint = parse_endpoint(config.envoy_listen)
    return TranslateOptions(listen_host=endpoint.host, listen_port=endpoint.port)


def _listen(server: grpc.aio.Server, address: str, flag: str) -> int:
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(
            f"cannot listen on {address}: the address is in use or not local; "
            f"pick another with {flag} HOST:PORT"
        )
    return port


@dataclass
class ControlPlane:
    """The store, the snapshot cache, the operator API and the ADS server, together."""

    config: ServeConfig
    cache: SnapshotCache = field(default_factory=SnapshotCache)
    registry: NodeRegistry = field(default_factory=NodeRegistry)
    store: SqliteStore | None = None
    _servers: list[grpc.aio.Server] = field(default_factory=list)

    async def start(self) -> None:
        options = translate_options(self.config)
        self.store = await SqliteStore.open(self.config.state_path)
        try:
            publisher = SnapshotPublisher(self.cache, options)
            await publisher.publish(await self.store.load())

            api = grpc.aio.server()
            operator_pb2_grpc.add_OperatorServicer_to_server(
                OperatorServicer(self.store, on_change=publisher.publish), api
            )
            _listen(api, self.config.api_listen, "--api-listen")
            xds = grpc.aio.server(options=[*keepalive.server_options(), *XDS_LIMITS])
            xds.add_generic_rpc_handlers(
                (AggregatedDiscoveryService(self.cache, self.registry).handler(),)
            )
            _listen(xds, self.config.xds_listen, "--xds-listen")
        except BaseException:
            await self.store.close()
            raise
        for server in (api, xds):
            await server.start()
            self._servers.append(server)
        log.info(
            "server.started",
            api_listen=self.config.api_listen,
            xds_listen=self.config.xds_listen,
            envoy_listen=self.config.envoy_listen,
            state=str(self.config.state_path),
        )

    async def stop(self) -> None:
        log.info("server.stopping", grace_seconds=SHUTDOWN_GRACE_SECONDS)
        await asyncio.gather(*(s.stop(SHUTDOWN_GRACE_SECONDS) for s in self._servers))
        if self.store is not None:
            await self.store.close()
        log.info("server.stopped")


async def serve(config: ServeConfig) -> None:
    """Run until SIGTERM or SIGINT, then drain in-flight calls and close the store."""
    plane = ControlPlane(config)
    await plane.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await plane.stop()
