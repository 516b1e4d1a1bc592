"""A NACK from real Envoy, and hostile or broken xDS clients: the fleet carries on."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import grpc
import pytest
from envoy.config.route.v3 import route_pb2

from tests.support.hostile import hostile_round
from tests.support.processes import ServerProcess, run_xdsctl
from tests.support.stack import Envoy, InProcessControlPlane, LoadLoop, Stack, wait_until
from xds_server.testing import ScriptedAdsClient
from xds_server.translate import cluster_name
from xds_server.xds.resources import CLUSTER, ROUTE, Resource, ResourceSet
from xds_server.xds.snapshot import Snapshot


def _broken_routes(snapshot: Snapshot) -> Snapshot:
    """Every weight 0: Envoy NACKs "Sum of weights ... must be greater than 0"."""
    table = route_pb2.RouteConfiguration()
    old = snapshot.routes.resources["routes"]
    table.CopyFrom(_decode_route(old))
    for host in table.virtual_hosts:
        for route in host.routes:
            for cluster in route.route.weighted_clusters.clusters:
                cluster.weight.value = 0
    broken = Resource.build(ROUTE, "routes", table, old.references)
    return dataclasses.replace(snapshot, routes=ResourceSet.of(ROUTE, [broken]))


def _decode_route(resource: Resource) -> route_pb2.RouteConfiguration:
    from envoy.service.discovery.v3 import discovery_pb2

    response = discovery_pb2.DiscoveryResponse.FromString(resource.sotw_fragment)
    table = route_pb2.RouteConfiguration()
    response.resources[0].Unpack(table)
    return table


@pytest.mark.parametrize("mode", ["sotw", "delta"])
def test_envoy_nack_is_recorded_not_resent_and_recovered(tmp_path: Path, mode: str) -> None:
    """An invalid route table placed below validation: Envoy NACKs, keeps serving, the error is
    recorded, the version is never resent, another node carries on, the next change lands."""
    delta = mode == "delta"
    stack = Stack(workdir=tmp_path, delta=delta)
    blue = stack.upstream("blue")
    plane = InProcessControlPlane(tmp_path, stack.listen_port)
    envoy = Envoy(tmp_path, plane.xds_address, "envoy-1", delta=delta)
    stack.envoys.append(envoy)
    env = {"XDSCTL_SERVER": plane.api_address}
    other = ScriptedAdsClient(plane.xds_address, "scripted-node", delta=delta)
    try:
        assert (
            run_xdsctl(
                "apply", "--deployment-tag", "blue", "--endpoint", blue.endpoint, env=env
            ).returncode
            == 0
        )
        wait_until(envoy.is_live, what="Envoy live")
        stack.wait_all("blue")
        plane.run(other.__aenter__())
        request = other.delta_request if delta else other.request
        for type_url, names in ((CLUSTER, None), (ROUTE, ["routes"])):
            plane.run(request(type_url, names))
            plane.run(other.ack(plane.run(other.receive()), names))

        with LoadLoop(stack, clients=4) as load:
            good = plane.call(lambda: plane.plane.cache.snapshot)
            broken = _broken_routes(good)
            plane.call(lambda: plane.plane.cache.set_snapshot(broken, check=False))
            rejected = "http.ingress_http.rds.routes.update_rejected"
            wait_until(lambda: envoy.stats()[rejected] == 1, what="Envoy NACKs")
            # Envoy counts the rejection before its NACK reaches the server.
            nack = wait_until(
                lambda: plane.call(
                    lambda: plane.plane.registry.get("envoy-1").last_nack.get(ROUTE)
                ),
                what="the server records the NACK",
            )
            assert nack.version == broken.routes.version
            assert "Sum of weights" in nack.message
            # The other node takes it (it does not validate), unhindered.
            taken = plane.run(other.receive())
            assert taken.version == broken.routes.version
            plane.run(other.ack(taken, ["routes"]))
            # Publishing the same broken snapshot again: never resent to Envoy.
            plane.call(lambda: plane.plane.cache.set_snapshot(broken, check=False))
            time.sleep(1.0)
            assert envoy.stats()[rejected] == 1
            stack.wait_all("blue")  # still serving on the last accepted routes
            # The next valid change reaches both.
            green = stack.upstream("green")
            assert (
                run_xdsctl("apply", "--bluegreen", "--endpoint", green.endpoint, env=env).returncode
                == 0
            )
            assert (
                run_xdsctl("traffic", "set", "--tags", "blue=0,green=100", env=env).returncode == 0
            )
            stack.wait_all("green")
            assert envoy.stats()[rejected] == 1
            # The other node walks the stages too: clusters first, then routes.
            while (later := plane.run(other.receive())).type_url != ROUTE:
                plane.run(other.ack(later))
            assert later.version != broken.routes.version
        assert load.failures() == {}, load.outcomes
    finally:
        plane.run(other.close())
        stack.close()
        plane.stop()


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_hostile_clients_leave_the_server_healthy(tmp_path: Path) -> None:
    """Clients that never ACK, send garbage, flood, send huge requests or vanish in numbers:
    the server stays up, a real Envoy keeps converging, memory returns to its level."""
    stack = Stack(workdir=tmp_path, delta=False)
    for name in ("blue", "green"):
        stack.upstream(name)
    server: ServerProcess = stack.start_server()
    envoy = stack.start_envoy()
    try:
        wait_until(envoy.is_live, what="Envoy live")
        stack.xdsctl(
            "apply", "--deployment-tag", "blue", "--endpoint", stack.upstreams["blue"].endpoint
        )
        stack.xdsctl("apply", "--bluegreen", "--endpoint", stack.upstreams["green"].endpoint)
        stack.wait_all("blue")
        assert server.process is not None
        pid = server.process.pid
        asyncio.run(hostile_round(server.xds_address))  # warm-up: allocator pools fill once
        time.sleep(1.0)
        baseline = _rss_kib(pid)
        with LoadLoop(stack, clients=2) as load:
            for share in (30, 100):
                seen = asyncio.run(hostile_round(server.xds_address))
                assert seen["huge"] == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert seen["never-acks got"] == CLUSTER
                stack.xdsctl("traffic", "set", "--tags", f"blue={100 - share},green={share}")
                green = cluster_name(
                    "default",
                    stack.xdsctl("traffic", "get", "-o", "json").json()["tags"][1]["deployment_id"],
                )
                wait_until(
                    lambda s=share, g=green: envoy.route_weights()["default"].get(g) == s,
                    what="Envoy converges beside hostile clients",
                )
        assert load.failures() == {}, load.outcomes
        assert server.process.poll() is None, "the server survived"
        time.sleep(1.0)
        after = _rss_kib(pid)
        print(f"server RSS: baseline {baseline} KiB, after two hostile rounds {after} KiB")
        assert after <= baseline + 8 * 1024, (baseline, after)
        assert stack.xdsctl("services", "list").returncode == 0
    finally:
        stack.close()
