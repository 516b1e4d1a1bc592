"""``xdsctl serve``: the control-plane process and its lifecycle.

Start-up order matters: the state is loaded and the first snapshot built
before the xDS port opens, so no Envoy is ever served an empty or partial
config (an empty CDS response would delete all its clusters).
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

import grpc
import structlog
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from xds_server.api.commit import CommitPath
from xds_server.api.fleet import FleetView
from xds_server.api.guard import ApiAccess, ApiGuard
from xds_server.api.handler import operator_handler
from xds_server.api.hooks_api import HookRpcs
from xds_server.api.rollout_driver import RolloutDriver
from xds_server.api.servicer import OperatorServicer
from xds_server.auth.identity import TokenBook
from xds_server.auth.limits import StreamCounter, WriteRateLimiter
from xds_server.auth.tls import is_loopback, server_credentials
from xds_server.config import ServeConfig, TlsFiles
from xds_server.errors import ServeRefused
from xds_server.heap import HeapSettler
from xds_server.hooks.dispatcher import Dispatcher, replica_name
from xds_server.ids import DeploymentIdGenerator
from xds_server.metrics import Metrics, serve_http
from xds_server.model.names import parse_endpoint
from xds_server.model.state import World
from xds_server.redaction import redact_url_passwords
from xds_server.replication.board import FleetBoard
from xds_server.replication.follower import StateFollower
from xds_server.store.base import Store
from xds_server.store.postgres import PostgresStore
from xds_server.store.sqlite import SqliteStore
from xds_server.traffic import sink
from xds_server.traffic.book import TrafficBook, attribution_from
from xds_server.traffic.exposition import TrafficCollector
from xds_server.traffic.windows import TrafficWindows
from xds_server.translate import TranslateOptions
from xds_server.v1 import operator_pb2
from xds_server.xds import keepalive
from xds_server.xds.cache import SnapshotCache
from xds_server.xds.csds import ClientStatusService
from xds_server.xds.gate import NodeGate
from xds_server.xds.publisher import SnapshotPublisher
from xds_server.xds.registry import NodeRegistry, XdsEvent
from xds_server.xds.service import AggregatedDiscoveryService

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_SECONDS = 5.0
# How long the per-change summary waits for the fleet before naming laggards.
SUMMARY_AFTER_SECONDS = 60.0
OPERATOR_SERVICE = operator_pb2.DESCRIPTOR.services_by_name["Operator"].full_name
CSDS_SERVICE = csds_pb2.DESCRIPTOR.services_by_name["ClientStatusDiscoveryService"].full_name


def translate_options(config: ServeConfig) -> TranslateOptions:
    endpoint = parse_endpoint(config.envoy_listen)
    return TranslateOptions(listen_host=endpoint.host, listen_port=endpoint.port)


def _listen(server: grpc.aio.Server, address: str, flag: str, tls: TlsFiles | None) -> int:
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            prefix = flag.removesuffix("-listen")
            port = server.add_secure_port(
                address, server_credentials(tls.cert, tls.key, tls.client_ca, prefix)
            )
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
    metrics: Metrics = field(default_factory=Metrics)
    registry: NodeRegistry = field(init=False)
    store: Store | None = None
    # The API tokens, as this replica last loaded them from the store.
    tokens: TokenBook = field(default_factory=TokenBook)
    ready: bool = False
    _servers: list[grpc.aio.Server] = field(default_factory=list)
    _http: WSGIServer | None = None
    _health: health.aio.HealthServicer = field(default_factory=health.aio.HealthServicer)
    _summary: asyncio.Task[None] | None = None
    _heap: HeapSettler = field(default_factory=HeapSettler)
    # The store's watch (change notices, the file) and, with PostgreSQL, the fleet board.
    _background: list[asyncio.Task[None]] = field(default_factory=list)
    # Live traffic from the Envoys' stats sinks (`xdsctl metrics`, /metrics by tag).
    traffic: TrafficWindows = field(default_factory=TrafficWindows)
    _follower: StateFollower | None = None
    _driver: RolloutDriver | None = None
    # Delivers the outbox's events to hooks (started with the servers).
    _dispatcher: Dispatcher | None = None

    def __post_init__(self) -> None:
        self.registry = NodeRegistry(
            grace_seconds=self.config.node_grace_seconds, on_event=self._xds_event
        )
        self.metrics.count_out_of_sync(lambda: self.registry.out_of_sync)
        self.book = TrafficBook(self.traffic, attribution_from(self._published_world))
        self.metrics.registry.register(TrafficCollector(self._published_world, self.book.totals))

    def _published_world(self) -> World | None:
        """The world Envoys are being served: what traffic is attributed by."""
        return self._follower.world if self._follower is not None else None

    def _xds_event(self, event: XdsEvent, kind: str, node: str, seconds: float | None) -> None:
        self.metrics.on_xds_event(event, kind, node, seconds)
        if event is XdsEvent.NACK and self._dispatcher is not None:
            record = self.registry.get(node)
            nack = record.last_nack.get(kind) if record is not None else None
            if nack is not None:
                self._dispatcher.note_nack(node, kind, nack.version, nack.message)
        if event in (XdsEvent.CONNECT, XdsEvent.DISCONNECT):
            # A closed stream leaves cycles (tasks, calls) among older objects.
            self._heap.poke(full=event is XdsEvent.DISCONNECT)

    def _published(self, world: World, changed: frozenset[str] | None) -> None:
        self.metrics.on_publish(world, changed)
        if self._driver is not None:
            self._driver.note_published(world, changed)
        if self._dispatcher is not None:
            self._dispatcher.wake()
        self.registry.notify(self._follower.publishing if self._follower is not None else 0)
        self._heap.poke()
        # One summary per change; a newer change supersedes the pending one.
        if self._summary is not None:
            self._summary.cancel()
        self._summary = asyncio.get_running_loop().create_task(self._summarise())

    def _readiness(self) -> tuple[bool, str]:
        """/readyz: ready once a snapshot is loaded; a database blip does not change that
        (every replica would go unready at once), but the body says how the store is. A
        state file lost under the server does: nothing can be written until a restart."""
        health = self.store.health if self.store else None
        ready = self.ready and not (health is not None and health.lost_for_good)
        store = health.describe() if health is not None else "not opened"
        return ready, f"{'ready' if ready else 'not ready'}\nstore: {store}\n"

    async def _summarise(self) -> None:
        """Log once the fleet has the change (or who lags after a while)."""
        result = await self.registry.wait_for_sync(SUMMARY_AFTER_SECONDS)
        if result.done:
            log.info("xds.change_applied", envoys=result.envoys, seconds=round(result.seconds, 3))
        else:
            log.warning(
                "xds.change_incomplete",
                envoys=result.envoys,
                seconds=round(result.seconds, 3),
                lagging={record.node_id: sync.reason for record, sync in result.lagging[:20]},
            )

    def _api_guard(self) -> ApiGuard:
        config = self.config
        access = ApiAccess(self.tokens, dict(config.api_cert_roles))
        access.warn_if_open()
        return ApiGuard(
            access,
            StreamCounter(config.api_call_limits(), "API calls"),
            WriteRateLimiter(config.api_write_rate, config.api_write_burst),
        )

    def _operator_server(
        self,
        follower: StateFollower,
        publisher: SnapshotPublisher,
        board: FleetBoard | None,
        commits: CommitPath,
    ) -> grpc.aio.Server:
        assert self.store is not None and self._dispatcher is not None
        api = grpc.aio.server(
            interceptors=[self._api_guard()],
            options=[("grpc.max_receive_message_length", self.config.api_max_message_bytes)],
        )
        servicer = OperatorServicer(
            self.store,
            follower=follower,
            commits=commits,
            fleet=FleetView(self.registry, board),
            snapshot_problems=publisher.problems,
            new_id=DeploymentIdGenerator(),
            forget_token=self.tokens.forget,
            traffic=self.traffic,
            hooks=HookRpcs(self.store, commits, self._dispatcher),
        )
        api.add_generic_rpc_handlers((operator_handler(servicer, self.metrics),))
        csds_pb2_grpc.add_ClientStatusDiscoveryServiceServicer_to_server(
            ClientStatusService(
                self.registry, self.cache, board.elsewhere_configs if board else None
            ),
            api,
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, api)
        names = (OPERATOR_SERVICE, CSDS_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
        reflection.enable_server_reflection(names, api)
        _listen(api, self.config.api_listen, "--api-listen", self.config.api_tls)
        return api

    def _xds_server(self) -> grpc.aio.Server:
        config = self.config
        streams = StreamCounter(config.xds_stream_limits(), "xDS streams")
        verify_nodes = config.xds_tls is not None and config.xds_tls.client_ca is not None
        xds = grpc.aio.server(
            options=[
                *keepalive.server_options(),
                ("grpc.max_receive_message_length", config.xds_max_message_bytes),
            ]
        )
        service = AggregatedDiscoveryService(
            self.cache, self.registry, NodeGate(streams, verify_nodes)
        )
        xds.add_generic_rpc_handlers((service.handler(),))
        # Envoy's stats sink shares xds_cluster: the same port, the same TLS.
        sink.register(xds, sink.MetricsSink(self.book, verify_nodes=verify_nodes))
        _listen(xds, config.xds_listen, "--xds-listen", config.xds_tls)
        return xds

    async def start(self) -> None:
        options = translate_options(self.config)
        metrics_at = parse_endpoint(self.config.metrics_listen)
        self.store = await _open_store(self.config)
        try:
            publisher = SnapshotPublisher(self.cache, options, after=self._published)
            follower = StateFollower(self.store, publisher.publish, self.tokens.replace)
            self._follower = follower
            self.store.health.on_change = self.metrics.on_store_health
            self.store.health.on_error = self.metrics.on_store_error
            self._http = serve_http(metrics_at.host, metrics_at.port, self.metrics, self._readiness)
            await follower.refresh()
            check_api_exposure(self.config, has_tokens=not self.tokens.empty)
            storage = self.store.board_storage()
            board = FleetBoard(storage, self.registry, follower) if storage is not None else None
            commits = CommitPath(self.store, publish=follower.after_commit)
            self._dispatcher = Dispatcher(
                self.store.outbox,
                replica_name(),
                exclusive=storage is None,
                on_attempt=self.metrics.on_hook_attempt,
            )
            api = self._operator_server(follower, publisher, board, commits)
            xds = self._xds_server()
        except BaseException:
            await self._close_side_resources()
            raise
        for server in (api, xds):
            await server.start()
            self._servers.append(server)
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self.store.watch(follower.catch_up)))
        if board is not None:
            self._background.append(loop.create_task(board.run()))
        self._background.append(loop.create_task(self._dispatcher.run()))
        self._driver = RolloutDriver(
            commits,
            self._published_world,
            self.traffic,
            DeploymentIdGenerator(),
        )
        self._background.append(loop.create_task(self._driver.run()))
        for name in ("", OPERATOR_SERVICE, CSDS_SERVICE):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self.ready = True
        log.info(
            "server.started",
            api_listen=self.config.api_listen,
            xds_listen=self.config.xds_listen,
            envoy_listen=self.config.envoy_listen,
            metrics_listen=self.config.metrics_listen,
            store=_store_name(self.config),
            api_tls=_tls_mode(self.config.api_tls),
            xds_tls=_tls_mode(self.config.xds_tls),
        )

    async def _close_side_resources(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self.store is not None:
            await self.store.close()

    async def stop(self) -> None:
        log.info("server.stopping", grace_seconds=SHUTDOWN_GRACE_SECONDS)
        self.ready = False
        if self._summary is not None:
            self._summary.cancel()
        self._heap.close()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*(s.stop(SHUTDOWN_GRACE_SECONDS) for s in self._servers))
        await self._close_side_resources()
        log.info("server.stopped")


async def _open_store(config: ServeConfig) -> Store:
    if config.store_url:
        return await PostgresStore.open(
            config.store_url,
            password=config.store_password,
            resync_seconds=config.resync_seconds,
        )
    return await SqliteStore.open(config.state_path)


def _on_loopback(address: str) -> bool:
    return is_loopback(parse_endpoint(address).host)


def _tls_mode(tls: TlsFiles | None) -> str:
    if tls is None:
        return "off"
    return "mtls" if tls.client_ca else "tls"


def check_api_exposure(config: ServeConfig, has_tokens: bool) -> None:
    """Refuse to serve the operator API beyond this machine without TLS and a way to
    authenticate, unless the operator said --insecure."""
    if config.insecure or _on_loopback(config.api_listen):
        return
    missing = []
    if config.api_tls is None:
        missing.append("TLS (--api-tls-cert and --api-tls-key)")
    if not has_tokens and not config.api_cert_roles:
        missing.append(
            "authentication (create a first admin token while the API is on loopback: "
            "`xdsctl tokens create --name admin --role admin`, or map client certificates "
            "with --api-client-ca and --api-cert-role SUBJECT=ROLE)"
        )
    if missing:
        raise ServeRefused(
            f"the operator API would listen on {config.api_listen}, beyond this machine, "
            f"without {' and '.join(missing)}: configure them, listen on 127.0.0.1, or pass "
            "--insecure to accept the risk"
        )


def _store_name(config: ServeConfig) -> str:
    """Where the state lives, safe to log (no password)."""
    return redact_url_passwords(config.store_url) if config.store_url else str(config.state_path)


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
