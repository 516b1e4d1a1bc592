"""Never drop a request: transitions, crashes, start order and mistakes, under steady load.

Real Envoy, `xdsctl serve` and upstreams on loopback, in SotW and delta mode.
Four clients send requests in a loop for the whole test; every response is
counted by status and upstream, and no test tolerates a single failure.
"""

from __future__ import annotations

import random
import signal
import time

import grpc

from tests.support.bad_input import BAD_INPUT
from tests.support.stack import Envoy, LoadLoop, Stack, wait_until
from xds_server.translate import cluster_name
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc

LOAD_CLIENTS = 4


class Operator:
    """The operator API from the test, for changes faster than a CLI subprocess each."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = operator_pb2_grpc.OperatorStub(self.channel)

    def traffic(self) -> pb.Traffic:
        return self.stub.GetTraffic(pb.GetTrafficRequest(service="default"), timeout=10)

    def set(self, weights: dict[str, int], mirror: dict[str, str] | None = None) -> None:
        self.stub.SetTraffic(
            pb.SetTrafficRequest(
                service="default",
                weights=[pb.TagWeight(tag=t, weight=w) for t, w in weights.items()],
                mirrors=[pb.Mirror(tag=t, percent=p) for t, p in (mirror or {}).items()],
            ),
            timeout=10,
        )

    def apply(self, port: int, *, tag: str = "", bluegreen: bool = False) -> str:
        # in_place: these releases move traffic on purpose (what the xDS side must carry).
        request = pb.ApplyRequest(
            service="default", endpoints=[pb.Endpoint(host="127.0.0.1", port=port)], in_place=True
        )
        if tag:
            request.deployment_tag = tag
        request.bluegreen = bluegreen
        return self.stub.Apply(request, timeout=10).deployment.id

    def set_endpoints(self, deployment_id: str, port: int) -> None:
        endpoint = pb.Endpoint(host="127.0.0.1", port=port)
        self.stub.SetEndpoints(pb.SetEndpointsRequest(id=deployment_id, endpoints=[endpoint]))

    def expected(self) -> tuple[dict[str, dict[str, int]], set[str]]:
        """Per routed service its cluster weights, and every active cluster: where Envoy
        should converge to."""
        routes: dict[str, dict[str, int]] = {}
        clusters: set[str] = set()
        for service in self.stub.ListServices(pb.ListServicesRequest(), timeout=10).services:
            request = pb.GetTrafficRequest(service=service.name)
            traffic = self.stub.GetTraffic(request, timeout=10)
            weights = {cluster_name(service.name, t.deployment_id): t.weight for t in traffic.tags}
            clusters |= set(weights)
            if service.domains and weights:
                routes[service.name] = weights
        return routes, clusters

    def close(self) -> None:
        self.channel.close()


def converged(envoy: Envoy, operator: Operator) -> bool:
    """Envoy routes exactly as the policy says and holds exactly its clusters (all stages done)."""
    routes, clusters = operator.expected()
    return envoy.route_weights() == routes and envoy.active_clusters() == clusters


class Release:
    """The test's own record of which upstream each deployment answers from."""

    def __init__(self, stack: Stack, operator: Operator) -> None:
        self.stack = stack
        self.operator = operator
        self.answers: dict[str, str] = {}
        self._count = 0

    def upstream(self) -> tuple[str, int]:
        self._count += 1
        name = f"u{self._count}"
        return name, self.stack.upstream(name).port

    def apply(self, **kwargs: object) -> str:
        name, port = self.upstream()
        deployment_id = self.operator.apply(port, **kwargs)  # type: ignore[arg-type]
        self.answers[deployment_id] = name
        return deployment_id

    def check_split(self) -> None:
        """A sample of live traffic reaches only deployments with weight, all of it at 100%."""
        traffic = self.operator.traffic()
        weighted = {self.answers[t.deployment_id]: t.weight for t in traffic.tags if t.weight}
        seen = self.stack.sample(30)
        assert set(seen) <= set(weighted), (seen, weighted)
        full = [name for name, weight in weighted.items() if weight == 100]
        if full:
            assert set(seen) == set(full), (seen, weighted)


def _transition(rng: random.Random, kind: str, release: Release) -> bool:
    """Perform one change of ``kind`` if the current state allows it; True if done."""
    operator = release.operator
    traffic = operator.traffic()
    weights = {t.tag: t.weight for t in traffic.tags}
    holders = {t.tag: t.deployment_id for t in traffic.tags}
    both = set(weights) == {"blue", "green"}
    serving = max(weights, key=weights.__getitem__)
    other = "green" if serving == "blue" else "blue"
    if kind == "weights" and both:
        share = rng.choice([0, 5, 10, 20, 30, 70, 80, 90, 95, 100])
        operator.set({"blue": 100 - share, "green": share})
    elif kind == "promote" and both and weights["blue"] != weights["green"]:
        operator.stub.PromoteTraffic(pb.PromoteTrafficRequest(service="default"), timeout=10)
    elif kind == "bluegreen" and (not both or weights["blue"] != weights["green"]):
        release.apply(bluegreen=True)
    elif kind == "scale_down" and both:
        operator.set({serving: 100})
    elif kind == "scale_up" and not both:
        operator.set({serving: 100, other: 0})
    elif kind == "set_endpoints":
        tag = rng.choice(sorted(holders))
        name, port = release.upstream()
        operator.set_endpoints(holders[tag], port)
        release.answers[holders[tag]] = name
    elif kind == "mirror_on" and both and not traffic.mirror:
        target = other if weights[other] < 100 else serving
        operator.set(weights, {target: rng.choice(["5", "10", "2.5"])})
    elif kind == "mirror_off" and traffic.mirror:
        operator.set(weights)
    elif kind == "rollback":
        operator.stub.RollbackTraffic(pb.RollbackTrafficRequest(service="default"), timeout=10)
    else:
        return False
    return True


KINDS = [
    "weights",
    "promote",
    "bluegreen",
    "scale_down",
    "scale_up",
    "set_endpoints",
    "mirror_on",
    "mirror_off",
    "rollback",
]


def test_hundred_transitions_without_a_failed_request(stack: Stack) -> None:
    """100+ mixed changes under load: zero failures, and each settles to the policy."""
    envoy, operator, release = _live(stack)
    wait_until(lambda: converged(envoy, operator), what="first convergence")
    rng = random.Random(4 if stack.delta else 3)
    done: list[str] = []
    try:
        with LoadLoop(stack, clients=LOAD_CLIENTS) as load:
            while len(done) < 110:
                kind = KINDS[len(done) % len(KINDS)] if rng.random() < 0.5 else rng.choice(KINDS)
                if not _transition(rng, kind, release):
                    continue
                done.append(kind)
                wait_until(lambda: converged(envoy, operator), what=f"settle after {kind}")
                release.check_split()
                assert load.failures() == {}, (done, load.outcomes)
        assert load.failures() == {}, load.outcomes
        assert sum(load.outcomes.values()) > 1000
        assert set(done) == set(KINDS), "every kind of change was exercised"
    finally:
        operator.close()


def _live(stack: Stack) -> tuple[Envoy, Operator, Release]:
    """Server and a live Envoy, with blue applied and green applied beside it."""
    stack.start_server()
    assert stack.server is not None
    envoy = stack.start_envoy()
    wait_until(envoy.is_live, what="Envoy live")
    operator = Operator(stack.server.address)
    release = Release(stack, operator)
    release.apply(tag="blue")
    release.apply(bluegreen=True)
    return envoy, operator, release


def _started_with_blue_green(stack: Stack) -> tuple[Envoy, Operator, Release]:
    envoy, operator, release = _live(stack)
    operator.set({"blue": 70, "green": 30})
    wait_until(lambda: converged(envoy, operator), what="convergence")
    return envoy, operator, release


def test_crash_and_restart_without_churn(stack: Stack) -> None:
    """kill -9 under load: Envoy serves on; the restarted server re-warms and rejects nothing."""
    envoy, operator, release = _started_with_blue_green(stack)
    assert stack.server is not None
    try:
        with LoadLoop(stack, clients=LOAD_CLIENTS) as load:
            before = envoy.stats()
            stack.server.signal(signal.SIGKILL)
            wait_until(
                lambda: envoy.stats()["control_plane.connected_state"] == 0, what="Envoy notices"
            )
            served_while_down = sum(load.outcomes.values())
            time.sleep(1.0)
            assert sum(load.outcomes.values()) > served_while_down, "Envoy kept serving"
            stack.server.start()
            operator = Operator(stack.server.address)
            wait_until(
                lambda: envoy.stats()["control_plane.connected_state"] == 1, what="reconnect"
            )
            time.sleep(1.0)
            after = envoy.stats()
            for name in (
                "cluster_manager.cds.update_success",
                "cluster_manager.cds.update_rejected",
                "cluster_manager.cluster_added",
                "cluster_manager.cluster_modified",
                "http.ingress_http.rds.routes.update_success",
                "listener_manager.lds.update_rejected",
            ):
                assert after[name] == before[name], name
            assert after["cluster_manager.warming_clusters"] == 0
            operator.set({"blue": 0, "green": 100})
            release.operator = operator
            wait_until(lambda: converged(envoy, operator), what="change after restart")
            release.check_split()
        assert load.failures() == {}, load.outcomes
    finally:
        operator.close()


def test_crash_in_the_middle_of_a_staged_push(stack: Stack) -> None:
    """kill -9 after the union CDS went out and before routes moved: zero failures."""
    envoy, operator, release = _started_with_blue_green(stack)
    assert stack.server is not None
    try:
        with LoadLoop(stack, clients=LOAD_CLIENTS) as load:
            # Freeze Envoy so it cannot ACK: the server sends the union CDS and
            # waits. Frozen requests only wait; none fails.
            envoy.process.send_signal(signal.SIGSTOP)
            try:
                release.apply(tag="blue")  # an in-place release: a staged push
                time.sleep(0.3)
                stack.server.signal(signal.SIGKILL)
            finally:
                envoy.process.send_signal(signal.SIGCONT)
            stack.server.start()
            operator = Operator(stack.server.address)
            release.operator = operator
            wait_until(lambda: converged(envoy, operator), what="convergence after the crash")
            release.check_split()
            assert envoy.stats()["cluster_manager.cds.update_rejected"] == 0
        assert load.failures() == {}, load.outcomes
    finally:
        operator.close()


def test_envoy_first_control_plane_later(stack: Stack) -> None:
    """Envoy started before the control plane converges and serves without errors."""
    upstream = stack.upstream("early")
    stack.start_server()
    assert stack.server is not None
    operator = Operator(stack.server.address)
    operator.apply(upstream.port, tag="blue")
    operator.close()
    stack.server.stop()
    # Envoy's own backoff can leave up to 30 s between attempts; a cap
    # (`bootstrap --reconnect-max`) makes the wait below the control plane's alone.
    envoy = stack.start_envoy(reconnect_max_s=0.2)
    time.sleep(3)  # Envoy retries the control plane meanwhile
    assert not envoy.is_live()
    # Every wait is under 0.2 s, so 3 s hold well over 8 attempts; Envoy's own
    # backoff (0.5 s doubling) makes about 4.
    attempts = envoy.stats()["cluster.xds_cluster.upstream_cx_connect_fail"]
    assert attempts >= 8, f"the reconnect cap is not in effect ({attempts} attempts in 3 s)"
    stack.server.start()
    wait_until(envoy.is_live, what="Envoy live after the control plane came")
    with LoadLoop(stack, clients=LOAD_CLIENTS) as load:
        time.sleep(2)
    assert load.failures() == {}, load.outcomes
    assert load.outcomes["early"] > 0


def test_operator_mistakes_never_reach_envoy(stack: Stack) -> None:
    """Every refused command, sent under load, leaves Envoy's config and traffic untouched."""
    # The same state as the CLI bad-input tests, so each command fails as documented there.
    envoy, operator, release = _live(stack)
    assert stack.server is not None
    ids = {"blue": operator.traffic().tags[0].deployment_id}
    stack.xdsctl("apply", "--service", "shop", "--endpoint", stack.upstream("shop").endpoint)
    stack.xdsctl("services", "set", "shop", "--domain", "shop.example.com")
    stack.xdsctl("hooks", "add", "taken", "--url", "http://127.0.0.1:9/hook")
    try:
        wait_until(lambda: converged(envoy, operator), what="convergence")
        time.sleep(0.5)
        dynamic = ("dynamic_active_clusters", "dynamic_route_configs", "dynamic_listeners")
        config = [envoy.config_dump(resource) for resource in dynamic]
        attempts = (
            "cluster_manager.cds.update_attempt",
            "http.ingress_http.rds.routes.update_attempt",
        )
        stats = envoy.stats()
        with LoadLoop(stack, clients=LOAD_CLIENTS) as load:
            for args, code, message in BAD_INPUT:
                result = stack.server.xdsctl(*args.format(**ids).split())
                assert (result.returncode, message in result.stderr) == (code, True), args
            time.sleep(0.5)
            release.check_split()
        assert load.failures() == {}, load.outcomes
        assert [envoy.config_dump(resource) for resource in dynamic] == config
        for name in attempts:
            assert envoy.stats()[name] == stats[name], name
    finally:
        operator.close()
