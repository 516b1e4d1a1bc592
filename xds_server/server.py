"""``xdsctl serve``: the control-plane process and its lifecycle."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from xds_server.api.servicer import OperatorServicer
from xds_server.store.sqlite import SqliteStore
from xds_server.v1 import operator_pb2_grpc

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ServeConfig:
    api_listen: str
    state_path: Path


async def serve(config: ServeConfig) -> None:
    """Run until SIGTERM or SIGINT, then drain in-flight calls and close the store."""
    store = await SqliteStore.open(config.state_path)
    server = grpc.aio.server()
    operator_pb2_grpc.add_OperatorServicer_to_server(OperatorServicer(store), server)
    try:
        port = server.add_insecure_port(config.api_listen)
    except RuntimeError:
        port = 0
    if port == 0:
        await store.close()
        raise OSError(
            f"cannot listen on {config.api_listen}: the address is in use or not local; "
            "pick another with --api-listen HOST:PORT"
        )
    await server.start()
    log.info(
        "server.started", api_listen=config.api_listen, port=port, state=str(config.state_path)
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("server.stopping", grace_seconds=SHUTDOWN_GRACE_SECONDS)
    await server.stop(SHUTDOWN_GRACE_SECONDS)
    await store.close()
    log.info("server.stopped")
