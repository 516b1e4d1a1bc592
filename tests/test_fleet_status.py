"""Seeing the fleet: status, --wait, CSDS, metrics, health and reflection, with real Envoy."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import XDSCTL
from tests.support.stack import Stack, wait_until
from xds_server.testing import ScriptedAdsClient
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1.operator_pb2_grpc import OperatorStub
from xds_server.xds.resources import CLUSTER


class BackgroundClient:
    """A scripted ADS node on its own event loop: it NACKs, or never ACKs, every response."""

    def __init__(self, address: str, node_id: str, behaviour: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = ScriptedAdsClient(address, node_id)
        self.behaviour = behaviour
        self._run(self.client.__aenter__())
        self._task = asyncio.run_coroutine_threadsafe(self._play(), self.loop)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    async def _play(self) -> None:
        await self.client.request(CLUSTER)
        while True:
            received = await self.client.receive(timeout=3600)
            if self.behaviour == "nack":
                await self.client.request(CLUSTER, nonce=received.nonce, error="rejected by test")

    def close(self) -> None:
        self._task.cancel()
        self._run(self.client.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Stack]:
    """Server (forgetting gone Envoys after 2 s), three live Envoys, blue and green."""
    stack = Stack(workdir=tmp_path, delta=False)
    for name in ("blue", "green"):
        stack.upstream(name)
    stack.start_server(extra_args=("--node-grace", "2s"))
    try:
        for i in range(3):
            # One of the three speaks delta: status covers both modes.
            stack.start_envoy(f"envoy-{i}", delta=i == 2)
        for envoy in stack.envoys:
            wait_until(envoy.is_live, what=f"{envoy.node_id} live")
        stack.xdsctl(
            "apply", "--deployment-tag", "blue", "--endpoint", stack.upstreams["blue"].endpoint
        )
        stack.xdsctl("apply", "--bluegreen", "--endpoint", stack.upstreams["green"].endpoint)
        yield stack
    finally:
        stack.close()


def _status(stack: Stack) -> dict[str, Any]:
    return stack.xdsctl("status", "-o", "json").json()


def test_status_and_disconnect(fleet: Stack) -> None:
    """Three Envoys in sync; one stopped shows disconnected, then drops off."""
    wait_until(
        lambda: _status(fleet)["summary"] == "3/3 Envoys in sync with the current config",
        what="3/3 in sync",
    )
    status = _status(fleet)
    assert [n["node_id"] for n in status["nodes"]] == ["envoy-0", "envoy-1", "envoy-2"]
    assert [n["mode"] for n in status["nodes"]] == ["sotw", "sotw", "delta"]
    assert all(n["types"]["rds"]["acked"] == n["types"]["rds"]["current"] for n in status["nodes"])
    # Which change each Envoy runs, not content hashes: all hold the current one.
    assert status["change"] > 0
    assert [n["change"] for n in status["nodes"]] == [status["change"]] * 3
    table = fleet.xdsctl("status").stdout
    headers = ["NODE", "CLUSTER", "MODE", "PEER", "CONNECTED", "CHANGE", "SYNC"]
    assert table.splitlines()[0].split() == headers
    assert f"current config: change {status['change']}" in table
    assert table.rstrip().endswith("3/3 Envoys in sync with the current config")
    assert "\nstore: available\n" in table  # a single SQLite file: always reachable
    assert fleet.xdsctl("status", "--fail-unsynced").returncode == 0
    # What --wait's progress line asks for: the counts alone, the same as in full.
    assert fleet.server is not None
    with grpc.insecure_channel(fleet.server.address) as channel:
        get_status = OperatorStub(channel).GetStatus
        counted = get_status(pb.GetStatusRequest(counts_only=True), timeout=10)
        full = get_status(pb.GetStatusRequest(), timeout=10)
    assert (list(counted.nodes), counted.connected, counted.in_sync) == ([], 3, 3)
    assert (len(full.nodes), full.connected, full.in_sync) == (3, 3, 3)

    fleet.envoys[1].stop()
    gone = wait_until(
        lambda: [n for n in _status(fleet)["nodes"] if not n["connected"]],
        what="envoy-1 disconnected",
    )
    assert [n["node_id"] for n in gone] == ["envoy-1"]
    assert "disconnected" in fleet.xdsctl("status").stdout
    wait_until(
        lambda: [n["node_id"] for n in _status(fleet)["nodes"]] == ["envoy-0", "envoy-2"],
        what="envoy-1 dropped after the grace period",
    )


def test_wait_reports_the_time(fleet: Stack) -> None:
    """--wait returns once all three ACKed, saying how long it took."""
    result = fleet.xdsctl("traffic", "set", "--tags", "blue=50,green=50", "--wait")
    assert "on all 3 Envoys after " in result.stderr
    for envoy in fleet.envoys:
        assert set(envoy.route_weights()["default"].values()) == {50}


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        ("nack", "NACKed cds"),
        ("silent", "has not ACKed cds"),
    ],
)
def test_wait_names_the_node_that_lags(fleet: Stack, behaviour: str, reason: str) -> None:
    """A node that NACKs (at once) or never ACKs (at the timeout): exit 4, change committed."""
    assert fleet.server is not None
    lagger = BackgroundClient(fleet.server.xds_address, f"{behaviour}-node", behaviour)
    try:
        result = fleet.server.xdsctl(
            "apply",
            "--bluegreen",
            "--endpoint",
            fleet.upstreams["green"].endpoint,
            "--wait",
            "--timeout",
            "3s",
        )
        assert result.returncode == 4, result.stderr
        assert "committed as revision 3, not yet on: " in result.stderr
        assert f"{behaviour}-node ({reason}" in result.stderr
        unsynced = fleet.server.xdsctl("status", "--fail-unsynced")
        assert unsynced.returncode == 4 and f"not in sync: {behaviour}-node" in unsynced.stderr
        shown = json.loads(fleet.server.xdsctl("status", "-o", "json").stdout)
        lagging = next(n for n in shown["nodes"] if n["node_id"] == f"{behaviour}-node")
        # It never held the change the others run (at most the ones before).
        assert (lagging["change"] or 0) < shown["change"]
        if behaviour == "silent":  # at the timeout the real Envoys have long had it
            assert "envoy-0" not in result.stderr
        # A NACK ends the wait at once, naming whoever lags at that moment.
        assert fleet.xdsctl("traffic", "get").yaml()["revision"] == 3
    finally:
        lagger.close()


def test_wait_with_min_envoys(fleet: Stack) -> None:
    """--min-envoys fails a wait when fewer Envoys are there."""
    assert fleet.server is not None
    result = fleet.server.xdsctl(
        "traffic",
        "set",
        "--tags",
        "blue=100,green=0",
        "--wait",
        "--min-envoys",
        "5",
        "--timeout",
        "1s",
    )
    assert result.returncode == 4
    assert "only 3 Envoys connected, --min-envoys asks for 5" in result.stderr


def test_csds_returns_every_node(fleet: Stack) -> None:
    """FetchClientStatus lists each node with its resources, SYNCED once it ACKed them."""
    assert fleet.server is not None
    wait_until(lambda: _status(fleet)["summary"].startswith("3/3"), what="in sync")
    with grpc.insecure_channel(fleet.server.address) as channel:
        stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        reply = stub.FetchClientStatus(csds_pb2.ClientStatusRequest(), timeout=5)
        assert [c.node.id for c in reply.config] == ["envoy-0", "envoy-1", "envoy-2"]
        for config in reply.config:
            clusters = [x for x in config.generic_xds_configs if x.type_url == CLUSTER]
            assert len(clusters) == 2
            assert all(x.config_status == csds_pb2.SYNCED for x in config.generic_xds_configs)
            assert clusters[0].xds_config.type_url == CLUSTER
        matcher = csds_pb2.ClientStatusRequest()
        matcher.node_matchers.add().node_id.exact = "envoy-1"
        only = stub.FetchClientStatus(matcher, timeout=5)
        assert [c.node.id for c in only.config] == ["envoy-1"]


def _metrics(stack: Stack) -> dict[tuple[str, tuple], float]:
    assert stack.server is not None
    url = f"http://{stack.server.metrics_address}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_health_and_reflection(fleet: Stack) -> None:
    """The metrics page parses and moves with a change; health and reflection answer."""
    assert fleet.server is not None
    wait_until(lambda: _status(fleet)["summary"].startswith("3/3"), what="in sync")
    before = _metrics(fleet)
    assert before[("xds_connected_envoys", (("mode", "sotw"),))] == 2
    assert before[("xds_connected_envoys", (("mode", "delta"),))] == 1
    fleet.xdsctl("traffic", "set", "--tags", "blue=80,green=20", "--wait")
    after = _metrics(fleet)
    rds = (("type", "rds"),)
    assert after[("xds_responses_total", rds)] == before[("xds_responses_total", rds)] + 3
    assert after[("xds_acks_total", rds)] == before[("xds_acks_total", rds)] + 3
    assert after[("xds_change_to_ack_seconds_count", rds)] >= 3
    assert after[("xds_service_revision", (("service", "default"),))] == 3
    ok = ("xds_operator_requests_total", (("method", "SetTraffic"), ("result", "ok")))
    assert after[ok] == before.get(ok, 0) + 1
    refused = fleet.server.xdsctl("traffic", "set", "--tags", "blue=1")
    assert refused.returncode == 1
    bad = (
        "xds_operator_requests_total",
        (("method", "SetTraffic"), ("result", "invalid_argument")),
    )
    assert _metrics(fleet)[bad] == 1
    assert _metrics(fleet)[("xds_store_available", ())] == 1

    for path, expected in (("/healthz", "ok"), ("/readyz", "ready\nstore: available")):
        url = f"http://{fleet.server.metrics_address}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.read().decode().strip() == expected

    with grpc.insecure_channel(fleet.server.address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        assert (
            check(health_pb2.HealthCheckRequest(), timeout=5).status
            == health_pb2.HealthCheckResponse.SERVING
        )
        service = health_pb2.HealthCheckRequest(service="xds_server.v1.Operator")
        assert check(service, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(channel)
        assert "xds_server.v1.Operator" in database.get_services()
        method = database.FindFileContainingSymbol("xds_server.v1.Operator")
        assert "SetTraffic" in [m.name for m in method.service[0].method]


def test_wait_shows_progress_on_a_terminal(fleet: Stack) -> None:
    """With stderr a terminal, --wait redraws "N/M Envoys in sync, T s" while it waits
    (here for a node that never ACKs), then names who lags."""
    assert fleet.server is not None
    lagger = BackgroundClient(fleet.server.xds_address, "silent-node", "silent")
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [*XDSCTL, "traffic", "set", "--tags", "blue=60,green=40", "--wait", "--timeout", "2s"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=follower,
            env={**os.environ, "XDSCTL_SERVER": fleet.server.address},
            timeout=30,
            check=False,
        )
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other side is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        lagger.close()
    assert done.returncode == 4
    text = shown.decode(errors="replace")
    assert re.search(r"\r\x1b\[K3/4 Envoys in sync, [0-9.]+ s", text), text
    assert "not yet on: silent-node" in text
