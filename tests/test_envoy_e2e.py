"""End to end with real Envoy: `xdsctl serve`, Envoy and upstreams on loopback, driven by xdsctl.

Every test runs in SotW and in delta mode.
"""

from __future__ import annotations

import math
import time
from collections import Counter

from tests.support.stack import LoadLoop, Stack, wait_until
from xds_server.translate import cluster_name


def started(stack: Stack, *names: str) -> Stack:
    """Server, one live Envoy, and upstreams named ``names``."""
    for name in names:
        stack.upstream(name)
    stack.start_server()
    envoy = stack.start_envoy()
    wait_until(envoy.is_live, what="Envoy live")
    return stack


def apply(stack: Stack, *args: str) -> str:
    return stack.xdsctl("apply", *args, "-o", "json").json()["deployment_id"]


def within_4_sigma(hits: int, total: int, share: float) -> bool:
    sigma = math.sqrt(total * share * (1 - share))
    return abs(hits - total * share) <= 4 * sigma


def test_blue_green_walkthrough(stack: Stack) -> None:
    """blue=100, 90/10 split, promote, promote back, bluegreen + promote to the newest."""
    started(stack, "blue", "green", "third")
    blue = apply(stack, "--deployment-tag", "blue", "--endpoint", stack.upstreams["blue"].endpoint)
    stack.xdsctl("traffic", "set", "--tags", "blue=100")
    stack.wait_all("blue")

    green = apply(stack, "--bluegreen", "--endpoint", stack.upstreams["green"].endpoint)
    stack.xdsctl("traffic", "set", "--tags", "blue=90,green=10")
    envoy = stack.envoys[0]
    wait_until(
        lambda: envoy.route_weights()["default"].get(cluster_name("default", green)) == 10,
        what="90/10 in Envoy",
    )
    counts = stack.sample(2000)
    assert set(counts) == {"blue", "green"}, counts
    assert within_4_sigma(counts["green"], 2000, 0.10), counts
    got = stack.xdsctl("traffic", "get").yaml()
    assert {t["deployment_id"] for t in got["tags"]} == {blue, green}

    stack.xdsctl("traffic", "promote")
    stack.wait_all("green")
    stack.xdsctl("traffic", "promote")
    stack.wait_all("blue")
    apply(stack, "--bluegreen", "--endpoint", stack.upstreams["third"].endpoint)
    stack.xdsctl("traffic", "promote")
    stack.wait_all("third")


def test_mirror(stack: Stack) -> None:
    """Clients see only blue; green gets ~5% as shadows, Host suffixed -shadow; slow shadows cost
    clients nothing."""
    started(stack, "blue", "green")
    apply(stack, "--deployment-tag", "blue", "--endpoint", stack.upstreams["blue"].endpoint)
    green = apply(stack, "--bluegreen", "--endpoint", stack.upstreams["green"].endpoint)
    stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0", "--mirror", "green=5")
    wait_until(
        lambda: (
            "request_mirror_policies"
            in stack.envoys[0].admin_get("/config_dump?resource=dynamic_route_configs")
        ),
        what="mirror in Envoy",
    )
    shadows = stack.upstreams["green"]
    before = shadows.count()
    counts = stack.sample(2000)
    assert counts == Counter({"blue": 2000})
    time.sleep(0.5)  # shadows are fire-and-forget: let the last ones land
    mirrored = shadows.requests[before:]
    assert within_4_sigma(len(mirrored), 2000, 0.05), len(mirrored)
    assert {seen.host for seen in mirrored} == {"example.com-shadow"}

    # Mirror everything to a green that takes 2 s: no client waits for it.
    shadows.delay = 2.0
    stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0", "--mirror", "green=100")
    wait_until(
        lambda: (
            '"numerator": 100'
            in stack.envoys[0].admin_get("/config_dump?resource=dynamic_route_configs")
        ),
        what="full mirror in Envoy",
    )
    slowest = 0.0
    for _ in range(20):
        began = time.monotonic()
        assert stack.request() == (200, "blue")
        slowest = max(slowest, time.monotonic() - began)
    assert slowest < 1.0, f"a primary request waited {slowest:.2f}s for the 2s shadow"
    assert cluster_name("default", green) in stack.envoys[0].active_clusters()


def test_scale_down_and_up(stack: Stack) -> None:
    """Leaving blue out removes its cluster after routes moved; listing it again restores it."""
    started(stack, "blue", "green")
    blue = apply(stack, "--deployment-tag", "blue", "--endpoint", stack.upstreams["blue"].endpoint)
    apply(stack, "--bluegreen", "--endpoint", stack.upstreams["green"].endpoint)
    envoy = stack.envoys[0]
    blue_cluster = cluster_name("default", blue)
    wait_until(lambda: blue_cluster in envoy.active_clusters(), what="blue cluster")
    with LoadLoop(stack) as load:
        stack.xdsctl("traffic", "set", "--tags", "green=100")
        wait_until(lambda: blue_cluster not in envoy.active_clusters(), what="blue removed")
        states = {
            d["id"]: d["state"] for d in stack.xdsctl("deployments", "list", "-o", "json").json()
        }
        assert states[blue] == "scaled_down"
        stack.xdsctl("traffic", "set", "--tags", "green=50,blue=50")
        wait_until(lambda: blue_cluster in envoy.active_clusters(), what="blue back")
        wait_until(lambda: stack.sample(40).keys() == {"blue", "green"}, what="both serve")
    assert load.failures() == {}, load.outcomes


def test_set_endpoints(stack: Stack) -> None:
    """On an IP deployment only EDS moves; on a DNS one the cluster changes; localhost serves."""
    started(stack, "blue", "moved", "dns")
    envoy = stack.envoys[0]
    blue = apply(stack, "--deployment-tag", "blue", "--endpoint", stack.upstreams["blue"].endpoint)
    stack.wait_all("blue")
    cds_version = envoy.stat_text("cluster_manager.cds.version_text")
    rds_before = envoy.stats()["http.ingress_http.rds.routes.update_success"]
    stack.xdsctl(
        "deployments", "set-endpoints", blue, "--endpoint", stack.upstreams["moved"].endpoint
    )
    stack.wait_all("moved")
    assert envoy.stat_text("cluster_manager.cds.version_text") == cds_version
    assert envoy.stats()["http.ingress_http.rds.routes.update_success"] == rds_before

    dns = apply(
        stack,
        "--deployment-tag",
        "blue",
        "--endpoint",
        f"localhost:{stack.upstreams['dns'].port}",
        "--in-place",
    )
    stack.wait_all("dns")
    stack.xdsctl(
        "deployments",
        "set-endpoints",
        dns,
        "--endpoint",
        f"localhost:{stack.upstreams['moved'].port}",
    )
    wait_until(
        lambda: envoy.stat_text("cluster_manager.cds.version_text") != cds_version,
        what="CDS moved for the DNS cluster",
    )
    stack.wait_all("moved")


def test_services_hosts_and_many_envoys(stack: Stack) -> None:
    """Two services split by Host (port included), 404 for unknown hosts, three Envoys in step,
    one of them connected before any deployment existed."""
    for name in ("shop-blue", "shop-green", "cart-blue"):
        stack.upstream(name)
    stack.start_server()
    early = stack.start_envoy("envoy-early")
    wait_until(early.is_live, what="early Envoy live")
    assert stack.request("anything.example")[0] == 404
    stack.xdsctl("services", "set", "shop", "--domain", "shop.example.com")
    stack.xdsctl("services", "set", "cart", "--domain", "cart.example.com")
    apply(
        stack,
        "--service",
        "shop",
        "--deployment-tag",
        "blue",
        "--endpoint",
        stack.upstreams["shop-blue"].endpoint,
    )
    green = apply(
        stack,
        "--service",
        "shop",
        "--bluegreen",
        "--endpoint",
        stack.upstreams["shop-green"].endpoint,
    )
    apply(stack, "--service", "cart", "--endpoint", stack.upstreams["cart-blue"].endpoint)
    stack.wait_all("cart-blue", host="cart.example.com:10000")
    others = [stack.start_envoy(f"envoy-{i}") for i in (2, 3)]
    for envoy in others:
        wait_until(envoy.is_live, what=f"{envoy.node_id} live")

    stack.xdsctl("traffic", "set", "--service", "shop", "--tags", "blue=0,green=100")
    for envoy in [early, *others]:
        wait_until(
            lambda e=envoy: (
                e.route_weights().get("shop", {}).get(cluster_name("shop", green)) == 100
            ),
            what=f"{envoy.node_id} follows",
        )
    stack.wait_all("shop-green", host="shop.example.com:10000")
    stack.wait_all("cart-blue", host="cart.example.com")
    assert stack.request("unknown.example.com")[0] == 404


def test_in_place_release_costs_no_request(stack: Stack) -> None:
    """Applying onto the serving tag under load: the old cluster stays until routes moved."""
    started(stack, "v1", "v2", "v3")
    apply(stack, "--endpoint", stack.upstreams["v1"].endpoint)
    stack.wait_all("v1")
    with LoadLoop(stack) as load:
        for name in ("v2", "v3"):
            apply(stack, "--endpoint", stack.upstreams[name].endpoint, "--in-place")
            stack.wait_all(name)
        time.sleep(0.5)
    assert load.failures() == {}, load.outcomes
    assert load.outcomes["v2"] > 0 and load.outcomes["v3"] > 0


def test_keepalive_and_restart_without_churn(stack: Stack) -> None:
    """A 1 s keepalive keeps one stream up; after a server restart Envoy applies nothing new."""
    stack.upstream("blue")
    stack.start_server()
    envoy = stack.start_envoy(keepalive_interval_s=1)
    wait_until(envoy.is_live, what="Envoy live")
    apply(stack, "--endpoint", stack.upstreams["blue"].endpoint)
    stack.wait_all("blue")
    time.sleep(20)
    stats = envoy.stats()
    assert stats["cluster.xds_cluster.upstream_cx_total"] == 1, "the ADS stream reconnected"
    assert stats["control_plane.connected_state"] == 1

    assert stack.server is not None
    stack.server.stop()
    wait_until(lambda: envoy.stats()["control_plane.connected_state"] == 0, what="disconnect")
    stack.server.start()
    wait_until(lambda: envoy.stats()["control_plane.connected_state"] == 1, what="reconnect")
    time.sleep(2)
    after = envoy.stats()
    for name in (
        "cluster_manager.cds.update_success",
        "http.ingress_http.rds.routes.update_success",
        "cluster_manager.cds.update_rejected",
    ):
        assert after[name] == stats[name], name
    stack.wait_all("blue")
