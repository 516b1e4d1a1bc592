"""`xdsctl metrics` and /metrics by tag, from real Envoys' stats sinks into `xdsctl serve`."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import XDSCTL, free_port
from tests.support.stack import Envoy, PacedLoad, Stack, wait_until

RATE = 100  # requests per second the load sends


def _started(stack: Stack, *, via: Callable[[str], str] | None = None) -> dict[str, str]:
    """blue=50/green=50 with 50% shadowed to green, whose upstream fails 1 request in 10.
    ``via``: what Envoy dials instead of the server's xDS address (given it)."""
    blue, green = stack.upstream("blue"), stack.upstream("green")
    green.fail_every = 10
    server = stack.start_server()
    xds = via(server.xds_address) if via else server.xds_address
    envoy = Envoy(stack.workdir, xds, "envoy-1", delta=stack.delta)
    stack.envoys.append(envoy)
    wait_until(envoy.is_live, what="Envoy live")
    ids = {}
    for tag, upstream in (("blue", blue), ("green", green)):
        ids[tag] = stack.xdsctl(
            "apply", "--deployment-tag", tag, "--endpoint", upstream.endpoint, "-o", "json"
        ).json()["deployment_id"]
    stack.xdsctl("traffic", "set", "--tags", "blue=50,green=50", "--mirror", "green=50")
    wait_until(lambda: set(stack.sample(40)) >= {"blue", "green"}, what="both tags serving")
    return ids


def _metrics(stack: Stack, window: str = "5s") -> dict[str, Any]:
    return stack.xdsctl("metrics", "--window", window, "-o", "json").json()


def _tag(report: dict[str, Any], tag: str) -> dict[str, Any]:
    return next(t for t in report["tags"] if t["tag"] == tag)


def test_error_rates_and_rates_per_tag(stack: Stack) -> None:
    ids = _started(stack)
    with PacedLoad(stack.listen_port, RATE) as load:
        started = time.monotonic()

        def green_errors_seen() -> bool:
            green = _tag(_metrics(stack), "green")
            rate = green["error_rate"]
            return rate is not None and green["requests"] >= 50 and abs(rate - 0.10) <= 0.04

        wait_until(green_errors_seen, timeout=5, what="green's 10% errors in the metrics")
        assert time.monotonic() - started <= 6
        time.sleep(max(0.0, started + 7 - time.monotonic()))  # a whole 5 s window of load
        report = _metrics(stack)
        sent = load.rate_over(5)
    blue, green = _tag(report, "blue"), _tag(report, "green")
    assert (blue["deployment_id"], green["deployment_id"]) == (ids["blue"], ids["green"])
    assert blue["error_rate"] == 0
    assert abs(green["error_rate"] - 0.10) <= 0.04, green
    total = blue["requests_per_second"] + green["requests_per_second"]
    assert abs(total - sent) <= 0.2 * sent, (total, sent)
    # Shadows (50% of all requests, to green) are counted apart from green's real traffic.
    assert abs(green["shadow"]["requests_per_second"] - sent / 2) <= 0.2 * sent / 2
    assert blue["shadow"]["requests_per_second"] == 0
    assert green["p50_ms"] is not None and green["p99_ms"] >= green["p50_ms"]
    assert blue["envoys_reporting"] == green["envoys_reporting"] == 1
    assert report["complete"] is True and report["missing_intervals"] == 0

    table = stack.xdsctl("metrics").stdout
    assert table.splitlines()[0].split()[:3] == ["TAG", "DEPLOYMENT", "WEIGHT"]
    assert "1 Envoy reporting over the last 30s" in table
    assert stack.server is not None
    watched = subprocess.Popen(
        [*XDSCTL, "--server", stack.server.address, "metrics", "--watch", "-o", "json"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watched.stdout is not None
        lines = [json.loads(watched.stdout.readline()) for _ in range(2)]
    finally:
        watched.terminate()
        watched.wait(timeout=10)
    assert [line["service"] for line in lines] == ["default", "default"]


def test_prometheus_series_carry_tags(stack: Stack) -> None:
    _started(stack)
    assert stack.server is not None
    url = f"http://{stack.server.metrics_address}/metrics"
    stack.sample(100)

    def families() -> dict[str, Any]:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        return {f.name: f for f in text_string_to_metric_families(text)}

    wait_until(
        lambda: any(
            s.labels.get("code_class") == "5xx" for s in families()["xds_tag_requests"].samples
        ),
        what="green's 5xx on /metrics",
    )
    found = families()
    weights = {s.labels["tag"]: s.value for s in found["xds_traffic_weight"].samples}
    assert weights == {"blue": 50, "green": 50}
    assert {s.labels["tag"]: s.value for s in found["xds_mirror_percent"].samples} == {"green": 50}
    assert {s.labels["tag"] for s in found["xds_deployment_info"].samples} == {"blue", "green"}
    requests = found["xds_tag_requests"].samples
    assert {(s.labels["tag"], s.labels["traffic"]) for s in requests} >= {
        ("blue", "real"),
        ("green", "real"),
        ("green", "shadow"),
    }
    assert all(s.name == "xds_tag_requests_total" for s in requests)
    duration = found["xds_tag_request_duration_seconds"].samples
    assert {s.labels["tag"] for s in duration if s.name.endswith("_count")} >= {"blue", "green"}
    assert not [name for name in found if name.endswith("_created")]


class SeveringProxy:
    """A TCP forwarder whose connections can be cut, and new ones refused, for a while."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host, int(port))
        self.address = f"127.0.0.1:{free_port()}"
        self._listener = socket.create_server(("127.0.0.1", int(self.address.split(":")[1])))
        self._open: list[socket.socket] = []
        self._refusing_until = 0.0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if time.monotonic() < self._refusing_until:
                client.close()
                continue
            server = socket.create_connection(self._upstream)
            self._open += [client, server]
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, target), daemon=True).start()

    def sever(self, seconds: float) -> None:
        self._refusing_until = time.monotonic() + seconds
        for connection in self._open:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()
        self._open = []

    def close(self) -> None:
        self._listener.close()
        self.sever(0)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass


def test_a_cut_sink_stream_is_reported_as_missing_data(stack: Stack) -> None:
    proxies: list[SeveringProxy] = []

    def via_proxy(address: str) -> str:
        proxies.append(SeveringProxy(address))
        return proxies[0].address

    try:
        _started(stack, via=via_proxy)
        [proxy] = proxies
        with PacedLoad(stack.listen_port, RATE):
            time.sleep(3)
            assert _metrics(stack, "3s")["missing_intervals"] == 0
            proxy.sever(3)
            time.sleep(5)
            report = _metrics(stack, "10s")
        assert report["missing_intervals"] >= 2, report
        assert report["complete"] is False
        assert "incomplete" in stack.xdsctl("metrics", "--window", "10s").stdout
    finally:
        for proxy in proxies:
            proxy.close()
