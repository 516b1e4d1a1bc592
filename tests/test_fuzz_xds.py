"""Property-based fuzzing of the ADS streams (typed requests and raw bytes), SotW and delta.

Each example is one hostile stream: a sequence of adversarial DiscoveryRequests
(unknown, empty or odd type URLs, huge and odd names, random nonces, versions
and error details, missing or odd node ids, thousands of names) or of random
bytes. The stream ends with the status its requests call for (OK, or
INVALID_ARGUMENT naming what is wrong, or RESOURCE_EXHAUSTED for an oversized
message), never UNKNOWN or INTERNAL, and answers only the types it asked for.
Meanwhile a well-behaved SotW node stays connected: every few examples, and
after each property, a change made through the operator API reaches it, it
ACKs, the server counts it in sync and the health check answers SERVING.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.hostile import hostile_round
from tests.support.processes import free_port
from tests.support.stack import InProcessControlPlane, wait_until
from xds_server.testing import Received, ScriptedAdsClient
from xds_server.translate import cluster_name
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc
from xds_server.xds.admission import MAX_NODE_NAME
from xds_server.xds.cache import SnapshotCache
from xds_server.xds.registry import Sync
from xds_server.xds.resources import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE
from xds_server.xds.service import ADS_SERVICE

WATCHER = "well-behaved-envoy"
MAX_MESSAGE = 4 * 1024 * 1024  # the server's xDS receive limit
# What grpcio answers by itself when a handler or a deserializer raises.
FORBIDDEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
CALL_DEADLINE_S = 10.0
# A change through the operator API, and the well-behaved node's convergence, every so often.
CONVERGE_EVERY = 20
# The well-behaved node has converged once it holds the change and nothing more comes.
QUIET_S = 0.3
MODES = {
    "sotw": (
        "StreamAggregatedResources",
        discovery_pb2.DiscoveryRequest,
        discovery_pb2.DiscoveryResponse,
    ),
    "delta": (
        "DeltaAggregatedResources",
        discovery_pb2.DeltaDiscoveryRequest,
        discovery_pb2.DeltaDiscoveryResponse,
    ),
}

# --- strategies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Known:
    """Real names and versions of the served config, so fuzzed requests reach deep paths."""

    names: list[str]
    versions: list[str]


ODD_TYPE_URLS = [
    "",
    "*",
    "type.googleapis.com/",
    "type.googleapis.com/not.a.Type",
    "type.googleapis.com/envoy.api.v2.Cluster",
    "type.googleapis.com/envoy.service.discovery.v3.DiscoveryRequest",
    CLUSTER.removeprefix("type.googleapis.com/"),
    CLUSTER.upper(),
    CLUSTER + " ",
    ROUTE + "\x00",
    "t" * 100_000,
]
ODD_NAMES = [
    "",
    "*",
    " ",
    "\x00",
    "ünïcode ✓",
    "../../etc/passwd",
    "%s%n{}",
    "xdstp://authority/envoy.config.cluster.v3.Cluster/x",
    "x" * 100_000,
]
ODD_NODE_IDS = ["", "\x00", " ", "n" * 10_000, "ünïcode"]
# Just over the server's receive limit: refused as RESOURCE_EXHAUSTED.
OVERSIZED_NAMES = ["x" * 1000] * (MAX_MESSAGE // 1000 + 100)

type_urls = st.one_of(
    st.sampled_from(PUSH_ORDER), st.sampled_from(ODD_TYPE_URLS), st.text(max_size=60)
)
nonces = st.one_of(
    st.sampled_from(["", "0", "1", "2", "3", "4", "-1", "9" * 40]), st.text(max_size=20)
)
error_details = st.one_of(
    st.none(),
    st.builds(
        status_pb2.Status,
        code=st.integers(-(2**31), 2**31 - 1),
        message=st.one_of(st.text(max_size=40), st.just("e" * 100_000)),
    ),
)
node_ids = st.one_of(st.sampled_from(ODD_NODE_IDS), st.text(max_size=20)).filter(
    lambda node_id: node_id != WATCHER
)
nodes = st.one_of(
    st.none(),
    st.builds(
        base_pb2.Node,
        id=node_ids,
        cluster=st.text(max_size=20),
        user_agent_name=st.text(max_size=10),
    ),
)
# The first request's node: usually a usable id, so the stream goes past identification.
first_nodes = st.one_of(
    st.builds(base_pb2.Node, id=st.sampled_from(["fuzz-envoy", "fuzz-envoy-2"])), nodes
)
# One stream in ten carries a message over the receive limit.
oversize = st.sampled_from([False] * 9 + [True])


def names(known: Known) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(known.names + ODD_NAMES), st.text(max_size=40))


def versions(known: Known) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["", "0", "x" * 10_000, *known.versions]), st.text(max_size=20)
    )


def name_lists(known: Known) -> st.SearchStrategy[list[str]]:
    return st.one_of(
        st.lists(names(known), max_size=6),
        st.integers(0, 3000).map(lambda count: [f"name-{i}" for i in range(count)]),
    )


def sotw_requests(known: Known) -> st.SearchStrategy[discovery_pb2.DiscoveryRequest]:
    return st.builds(
        discovery_pb2.DiscoveryRequest,
        node=nodes,
        type_url=type_urls,
        version_info=versions(known),
        resource_names=name_lists(known),
        response_nonce=nonces,
        error_detail=error_details,
    )


def delta_requests(known: Known) -> st.SearchStrategy[discovery_pb2.DeltaDiscoveryRequest]:
    return st.builds(
        discovery_pb2.DeltaDiscoveryRequest,
        node=nodes,
        type_url=type_urls,
        resource_names_subscribe=name_lists(known),
        resource_names_unsubscribe=st.lists(names(known), max_size=4),
        initial_resource_versions=st.dictionaries(names(known), versions(known), max_size=4),
        response_nonce=nonces,
        error_detail=error_details,
    )


@st.composite
def streams(draw: st.DrawFn, mode: str, known: Known) -> list[Message]:
    """A sequence of requests for one stream, the first naming (or not) a node."""
    strategy = sotw_requests(known) if mode == "sotw" else delta_requests(known)
    requests: list[Message] = draw(st.lists(strategy, min_size=1, max_size=6))
    first = draw(first_nodes)
    requests[0].ClearField("node")
    if first is not None:
        requests[0].node.CopyFrom(first)
    if draw(oversize):
        huge = draw(strategy)
        names_field = "resource_names" if mode == "sotw" else "resource_names_subscribe"
        getattr(huge, names_field).extend(OVERSIZED_NAMES)
        requests.insert(draw(st.integers(0, len(requests))), huge)
    return requests


@st.composite
def raw_streams(draw: st.DrawFn, mode: str) -> list[bytes]:
    """Random bytes as requests, sometimes after a valid first request (so mid-stream)."""
    _, request_class, _ = MODES[mode]
    blobs = draw(st.lists(st.binary(max_size=200), min_size=1, max_size=3))
    if draw(st.booleans()):
        valid = request_class(node=base_pb2.Node(id="fuzz-envoy"), type_url=CLUSTER)
        blobs.insert(0, valid.SerializeToString())
    return blobs


# --- one hostile stream ------------------------------------------------------------------


def _identity(data: bytes) -> bytes:
    return data


def _allowed(blobs: list[bytes], request_class: Any) -> dict[grpc.StatusCode, str]:
    """The statuses a stream of these requests may end with, each with a phrase its
    message must hold. The first request must name the node; a message over the limit
    may cut a refusal of an earlier one short."""
    allowed: dict[grpc.StatusCode, str] = {}
    if any(len(blob) > MAX_MESSAGE for blob in blobs):
        allowed[grpc.StatusCode.RESOURCE_EXHAUSTED] = ""
    for index, blob in enumerate(blobs):
        if len(blob) > MAX_MESSAGE:
            return allowed
        try:
            request = request_class.FromString(blob)
        except DecodeError:
            allowed[grpc.StatusCode.INVALID_ARGUMENT] = request_class.DESCRIPTOR.full_name
            return allowed
        node = request.node
        too_long = max(len(node.id), len(node.cluster)) > MAX_NODE_NAME
        if index == 0 and (not node.id or too_long):
            allowed[grpc.StatusCode.INVALID_ARGUMENT] = "node.id"
            return allowed
    allowed[grpc.StatusCode.OK] = ""
    return allowed


def _requested_types(blobs: list[bytes], request_class: Any) -> set[str]:
    types = set()
    for blob in blobs:
        try:
            types.add(request_class.FromString(blob).type_url)
        except DecodeError:
            break
    return types


def _hostile_stream(channel: grpc.Channel, mode: str, blobs: list[bytes]) -> None:
    """Send ``blobs`` on one stream, half-close, read to the end; assert how it ended."""
    method, request_class, response_class = MODES[mode]
    call = channel.stream_stream(
        f"/{ADS_SERVICE}/{method}",
        request_serializer=_identity,
        response_deserializer=response_class.FromString,
    )
    responses: list[Any] = []
    code, details = grpc.StatusCode.OK, ""
    try:
        for response in call(iter(blobs), timeout=CALL_DEADLINE_S):
            responses.append(response)
    except grpc.RpcError as error:
        code, details = error.code(), error.details() or ""
    assert code not in FORBIDDEN, f"{mode}: {code.name} {details[:300]!r}"
    allowed = _allowed(blobs, request_class)
    assert code in allowed, f"{mode}: {code.name} {details[:300]!r}, expected one of {allowed}"
    assert allowed[code] in details, f"{mode}: {code.name} {details[:300]!r}"
    # Answers only for known types the stream asked for, each with a nonce of its own.
    asked = _requested_types(blobs, request_class) & set(PUSH_ORDER)
    assert {r.type_url for r in responses} <= asked, [r.type_url for r in responses]
    assert len({r.nonce for r in responses}) == len(responses)


# --- the well-behaved node ---------------------------------------------------------------


def _route_weights(received: Received) -> dict[str, int]:
    table = received.resources["routes"]
    return {
        cluster.name: cluster.weight.value
        for host in table.virtual_hosts
        for route in host.routes
        for cluster in route.route.weighted_clusters.clusters
    }


@dataclass
class Watcher:
    """A SotW node that behaves like Envoy: asks for every type, follows CDS with its EDS
    subscription, ACKs every response. Runs on the control plane's event loop."""

    address: str
    cache: SnapshotCache
    client: ScriptedAdsClient = field(init=False)
    latest: dict[str, Received] = field(default_factory=dict)
    eds_names: list[str] | None = None

    async def start(self) -> None:
        self.client = ScriptedAdsClient(self.address, WATCHER)
        await self.client.__aenter__()
        await self.client.request(CLUSTER)
        await self.client.request(LISTENER)
        await self.client.request(ROUTE, ["routes"])

    async def _take(self, got: Received) -> None:
        self.latest[got.type_url] = got
        if got.type_url == CLUSTER:
            clusters = sorted(got.resources)
            if clusters != self.eds_names:
                # As Envoy: ask for the new clusters' endpoints, then ACK the clusters.
                self.eds_names = clusters
                eds = self.latest.get(ENDPOINT)
                await self.client.request(
                    ENDPOINT,
                    clusters,
                    version=eds.version if eds else "",
                    nonce=eds.nonce if eds else "",
                )
            await self.client.ack(got)
        elif got.type_url == ENDPOINT:
            await self.client.ack(got, self.eds_names)
        elif got.type_url == ROUTE:
            await self.client.ack(got, ["routes"])
        else:
            await self.client.ack(got)

    def _holds(self, weights: dict[str, int]) -> bool:
        snapshot = self.cache.snapshot
        assert snapshot is not None
        clusters = set(snapshot.clusters.resources)
        got = self.latest
        return (
            LISTENER in got
            and ROUTE in got
            and _route_weights(got[ROUTE]) == weights
            and CLUSTER in got
            and set(got[CLUSTER].resources) == clusters
            and ENDPOINT in got
            and set(got[ENDPOINT].resources) == clusters
        )

    async def follow(self, weights: dict[str, int], timeout: float = 20.0) -> None:
        """Take and ACK responses until the node holds ``weights`` and nothing more comes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                got = await self.client.receive(timeout=QUIET_S)
            except TimeoutError:
                if self._holds(weights):
                    return
                if loop.time() > deadline:
                    held = {t: (r.version, sorted(r.resources)) for t, r in self.latest.items()}
                    raise AssertionError(f"no convergence on {weights}; holds {held}") from None
                continue
            await self._take(got)


# --- the control plane under fuzz ------------------------------------------------------


@dataclass
class Fleet:
    """The control plane, its operator API and the well-behaved node beside the fuzzing."""

    plane: InProcessControlPlane
    api: grpc.Channel
    xds: grpc.Channel
    watcher: Watcher
    blue: str
    known: Known
    examples: int = 0
    rounds: int = 0

    @property
    def operator(self) -> operator_pb2_grpc.OperatorStub:
        return operator_pb2_grpc.OperatorStub(self.api)

    def example_done(self) -> None:
        self.examples += 1
        if self.examples % CONVERGE_EVERY == 0:
            self.converge()

    def converge(self, alone: bool = True) -> None:
        """A change of clusters and routes through the operator API: the well-behaved node
        gets it and ACKs, the server counts it in sync and answers SERVING. ``alone``: no
        other stream is open, so the whole fleet is in sync and no stream leaked."""
        self.rounds += 1
        weight = 10 + (self.rounds * 37) % 80
        # An in-place release onto green: a new cluster replaces the old green one.
        applied = self.operator.Apply(
            pb.ApplyRequest(
                deployment_tag="green",
                endpoints=[pb.Endpoint(host=f"10.1.{self.rounds % 250}.2", port=80)],
                in_place=True,
            ),
            timeout=10,
        )
        self.operator.SetTraffic(
            pb.SetTrafficRequest(
                weights=[
                    pb.TagWeight(tag="blue", weight=weight),
                    pb.TagWeight(tag="green", weight=100 - weight),
                ]
            ),
            timeout=10,
        )
        green = cluster_name("default", applied.deployment.id)
        self.plane.run(self.watcher.follow({self.blue: weight, green: 100 - weight}))
        registry = self.plane.plane.registry

        def watcher_sync() -> Sync:
            record = registry.get(WATCHER)
            assert record is not None and record.connected, "the well-behaved node was dropped"
            return record.sync()

        sync = self.plane.call(watcher_sync)
        assert sync.in_sync, sync
        health = health_pb2_grpc.HealthStub(self.api)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        if alone:
            wait_until(
                lambda: (
                    self.plane.call(lambda: [r.node_id for r in registry.connected()]) == [WATCHER]
                ),
                what="hostile streams gone from the registry",
            )
            synced = self.operator.WaitForSync(
                pb.WaitForSyncRequest(timeout_seconds=10, min_envoys=1), timeout=15
            )
            assert synced.done and synced.envoys == 1, synced


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    """A real control plane (in process), two deployments on a canary split, and the
    well-behaved node converged on it."""
    plane = InProcessControlPlane(Path(tempfile.mkdtemp(prefix="fuzz-xds-")), free_port())
    api = grpc.insecure_channel(plane.api_address)
    xds = grpc.insecure_channel(plane.xds_address)
    operator = operator_pb2_grpc.OperatorStub(api)
    blue = operator.Apply(
        pb.ApplyRequest(deployment_tag="blue", endpoints=[pb.Endpoint(host="10.0.0.1", port=80)])
    )
    operator.Apply(
        pb.ApplyRequest(bluegreen=True, endpoints=[pb.Endpoint(host="10.0.0.2", port=80)])
    )
    operator.SetTraffic(
        pb.SetTrafficRequest(
            weights=[pb.TagWeight(tag="blue", weight=90), pb.TagWeight(tag="green", weight=10)]
        )
    )
    snapshot = plane.call(lambda: plane.plane.cache.snapshot)
    known = Known(
        names=sorted({name for s in snapshot.sets() for name in s.resources}),
        versions=sorted({s.version for s in snapshot.sets()}),
    )
    watcher = Watcher(plane.xds_address, plane.plane.cache)
    plane.run(watcher.start())
    built = Fleet(plane, api, xds, watcher, cluster_name("default", blue.deployment.id), known)
    built.converge()
    yield built
    plane.run(watcher.client.close())
    xds.close()
    api.close()
    plane.stop()


@pytest.mark.parametrize("mode", list(MODES))
def test_typed_requests(fleet: Fleet, mode: str) -> None:
    """Adversarial DiscoveryRequests: refused or ignored, never an internal error."""

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(requests=streams(mode, fleet.known))
    def check(requests: list[Message]) -> None:
        _hostile_stream(fleet.xds, mode, [r.SerializeToString() for r in requests])
        fleet.example_done()

    check()
    fleet.converge()


@pytest.mark.parametrize("mode", list(MODES))
def test_raw_bytes(fleet: Fleet, mode: str) -> None:
    """Random bytes as requests: refused as INVALID_ARGUMENT naming the message type."""

    @settings(
        max_examples=50,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(blobs=raw_streams(mode))
    def check(blobs: list[bytes]) -> None:
        _hostile_stream(fleet.xds, mode, blobs)
        fleet.example_done()

    check()
    fleet.converge()


def test_converges_while_hostile_clients_are_connected(fleet: Fleet) -> None:
    """The hostile clients (tests/support/hostile.py) (never ACKing, garbage, flood,
    huge, vanishing in numbers) at the same time as a change: the node still converges."""
    hostile = asyncio.run_coroutine_threadsafe(
        hostile_round(fleet.plane.xds_address), fleet.plane.loop
    )
    fleet.converge(alone=False)
    seen = hostile.result(timeout=60)
    assert seen["huge"] == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert seen["never-acks got"] == CLUSTER
    fleet.converge()
