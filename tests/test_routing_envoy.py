"""Header override, sticky splits and marked shadows, through a real Envoy (SotW and delta)."""

from __future__ import annotations

import math
from collections import Counter

from tests.support.stack import Stack, wait_until
from xds_server.translate import cluster_name

TAG_HEADER = "x-deployment-tag"


def _started(stack: Stack, *tags: str) -> dict[str, str]:
    """Server, a live Envoy, one upstream per tag and a deployment holding each tag."""
    for tag in tags:
        stack.upstream(tag)
    stack.start_server()
    envoy = stack.start_envoy()
    wait_until(envoy.is_live, what="Envoy live")
    ids = {}
    for tag in tags:
        ids[tag] = stack.xdsctl(
            "apply", "--deployment-tag", tag, "--endpoint", stack.upstreams[tag].endpoint,
            "-o", "json",
        ).json()["deployment_id"]  # fmt: skip
    return ids


def _routes_of(stack: Stack) -> list[dict[str, object]]:
    (table,) = stack.envoys[0].config_dump("dynamic_route_configs")
    (host,) = table["route_config"]["virtual_hosts"]
    routes: list[dict[str, object]] = host["routes"]
    return routes


def _within_4_sigma(hits: int, total: int, share: float) -> bool:
    return abs(hits - total * share) <= 4 * math.sqrt(total * share * (1 - share))


def test_header_override_reaches_a_tag_whatever_its_weight(stack: Stack) -> None:
    _started(stack, "blue", "green", "grey")
    stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0")  # grey: scaled down
    stack.wait_all("blue")
    stack.xdsctl("services", "set", "default", "--override-header", TAG_HEADER)
    wait_until(lambda: len(_routes_of(stack)) == 3, what="override routes in Envoy")

    assert stack.sample(20, headers={TAG_HEADER: "green"}) == Counter(green=20)
    assert stack.sample(20, headers={TAG_HEADER: "blue"}) == Counter(blue=20)
    # A scaled-down tag has no route: the header falls through to the weights.
    assert stack.sample(20, headers={TAG_HEADER: "grey"}) == Counter(blue=20)
    # Exact and case-sensitive: a near miss follows the weights too.
    assert stack.sample(20, headers={TAG_HEADER: "Green"}) == Counter(blue=20)

    stack.xdsctl("traffic", "set", "--tags", "blue=50,green=50")
    wait_until(lambda: set(stack.sample(200)) == {"blue", "green"}, what="50/50 without header")
    assert stack.sample(20, headers={TAG_HEADER: "blue"}) == Counter(blue=20)

    listed = stack.xdsctl("services", "list", "-o", "json").json()
    assert listed[0]["routing"]["override_header"] == TAG_HEADER
    stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0")
    stack.xdsctl("services", "set", "default", "--no-override-header")
    wait_until(lambda: len(_routes_of(stack)) == 1, what="override routes gone")
    assert stack.sample(20, headers={TAG_HEADER: "green"}) == Counter(blue=20)


def test_sticky_split_keeps_every_green_user_green(stack: Stack) -> None:
    ids = _started(stack, "blue", "green")
    stack.xdsctl("traffic", "set", "--tags", "blue=90,green=10", "--sticky-header", "x-user-id")
    envoy = stack.envoys[0]
    green_cluster = cluster_name("default", ids["green"])
    wait_until(
        lambda: envoy.route_weights()["default"].get(green_cluster) == 10, what="90/10 in Envoy"
    )
    users = [{"x-user-id": f"user-{n}"} for n in range(2000)]
    first = stack.answers(users)
    assert stack.answers(users[:200]) == first[:200], "the same id went elsewhere"
    on_green = {n for n, where in enumerate(first) if where == "green"}
    assert _within_4_sigma(len(on_green), 2000, 0.10), len(on_green)

    # Typed in the other order, and without --sticky-header: stickiness stays.
    stack.xdsctl("traffic", "set", "--tags", "green=20,blue=80")
    wait_until(
        lambda: envoy.route_weights()["default"].get(green_cluster) == 20, what="80/20 in Envoy"
    )
    second = stack.answers(users)
    assert all(second[n] == "green" for n in on_green), "a green user moved back to blue"
    assert _within_4_sigma(second.count("green"), 2000, 0.20), second.count("green")
    assert stack.xdsctl("traffic", "get", "-o", "json").json()["routing"]["sticky_header"] == (
        "x-user-id"
    )

    stack.xdsctl("traffic", "set", "--tags", "blue=80,green=20", "--no-sticky")
    wait_until(lambda: not _routes_of(stack)[0]["route"].get("hash_policy"), what="no hash")


def test_shadows_are_marked_and_primaries_are_not(stack: Stack) -> None:
    _started(stack, "blue", "green")
    stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0", "--mirror", "green=100")
    blue, green = stack.upstreams["blue"], stack.upstreams["green"]
    wait_until(lambda: stack.request()[1] == "blue" and green.count() > 0, what="mirroring")
    stack.sample(30)
    wait_until(lambda: green.count() >= 30, what="30 shadows")
    assert all(seen.headers.get("x-shadow") == "1" for seen in green.requests)
    assert all("x-shadow" not in seen.headers for seen in blue.requests)
    assert {seen.host for seen in green.requests} == {"example.com-shadow"}
    # A client cannot forge the mark: its own copy is dropped, shadows get Envoy's.
    forged = len(green.requests)
    stack.sample(10, headers={"x-shadow": "forged"})
    wait_until(lambda: green.count() >= forged + 10, what="10 more shadows")
    assert all("x-shadow" not in seen.headers for seen in blue.requests)
    assert all(seen.headers.get("x-shadow") == "1" for seen in green.requests)

    stack.xdsctl("services", "set", "default", "--no-mirror-host-suffix")
    wait_until(
        lambda: _routes_of(stack)[-1]["route"]["request_mirror_policies"][0].get(
            "disable_shadow_host_suffix_append"
        ),
        what="host suffix off in Envoy",
    )
    before = green.count()
    stack.sample(20)
    wait_until(lambda: green.count() >= before + 20, what="20 more shadows")
    assert {seen.host for seen in green.requests[before:]} == {"example.com"}
