"""The ADS protocol, exactly, against a scripted client (no Envoy): SotW and delta."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
import pytest

from tests.support.worlds import BLUE, GREEN, NEW_BLUE, world
from xds_server.model.state import World
from xds_server.testing import Received, ScriptedAdsClient
from xds_server.translate import TranslateOptions, cluster_name
from xds_server.xds import keepalive
from xds_server.xds.builder import snapshot_of
from xds_server.xds.cache import SnapshotCache
from xds_server.xds.planner import plan_clusters
from xds_server.xds.registry import NodeRegistry
from xds_server.xds.resources import CLUSTER, ENDPOINT, LISTENER, ROUTE
from xds_server.xds.service import AggregatedDiscoveryService

BLUE_ONLY = world({"blue": 100}, {"blue": BLUE})
BLUE_GREEN = world({"blue": 90, "green": 10}, {"blue": BLUE, "green": GREEN})


@dataclass
class Harness:
    cache: SnapshotCache
    registry: NodeRegistry
    address: str

    def publish(self, w: World, *, check: bool = True) -> None:
        self.cache.set_snapshot(snapshot_of(w, TranslateOptions()), check=check)

    def client(self, node: str = "node-1", *, delta: bool = False) -> ScriptedAdsClient:
        return ScriptedAdsClient(self.address, node, delta=delta)


@asynccontextmanager
async def ads(initial: World | None = BLUE_ONLY) -> AsyncIterator[Harness]:
    cache, registry = SnapshotCache(), NodeRegistry()
    server = grpc.aio.server(options=keepalive.server_options())
    server.add_generic_rpc_handlers((AggregatedDiscoveryService(cache, registry).handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    harness = Harness(cache, registry, f"127.0.0.1:{port}")
    if initial is not None:
        harness.publish(initial)
    try:
        yield harness
    finally:
        await server.stop(0)


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


BLUE_CLUSTER = cluster_name("default", BLUE)
GREEN_CLUSTER = cluster_name("default", GREEN)
NEW_BLUE_CLUSTER = cluster_name("default", NEW_BLUE)


def route_clusters(received: Received) -> list[str]:
    table = received.resources["routes"]
    return [c.name for c in table.virtual_hosts[0].routes[0].route.weighted_clusters.clusters]


async def sotw_converge(client: ScriptedAdsClient) -> dict[str, Received]:
    """Play Envoy's start-up: CDS, EDS, LDS, RDS, ACKing each; returns the last of each type."""
    got: dict[str, Received] = {}
    await client.request(CLUSTER)
    got[CLUSTER] = cds = await client.receive()
    await client.request(ENDPOINT, sorted(cds.resources))
    got[ENDPOINT] = eds = await client.receive()
    await client.ack(eds, sorted(cds.resources))
    await client.ack(cds)
    await client.request(LISTENER)
    got[LISTENER] = lds = await client.receive()
    await client.ack(lds)
    await client.request(ROUTE, ["routes"])
    got[ROUTE] = rds = await client.receive()
    await client.ack(rds, ["routes"])
    await client.expect_silence()
    return got


class TestSotw:
    def test_start_up_in_order(self) -> None:
        """CDS and EDS are answered at once, then LDS and RDS; all ACKed, then silence."""

        async def test() -> None:
            async with ads() as h, h.client() as client:
                got = await sotw_converge(client)
                assert list(got[CLUSTER].resources) == [BLUE_CLUSTER]
                assert list(got[ENDPOINT].resources) == [BLUE_CLUSTER]
                assert list(got[LISTENER].resources) == ["http"]
                assert route_clusters(got[ROUTE]) == [BLUE_CLUSTER]
                node = h.registry.get("node-1")
                assert node is not None and node.acked[ROUTE] == got[ROUTE].version

        run(test)

    def test_weight_change_sends_only_routes(self) -> None:
        """A weight-only change moves the RDS version alone."""

        async def test() -> None:
            split = world({"blue": 100, "green": 0}, {"blue": BLUE, "green": GREEN})
            async with ads(split) as h, h.client() as client:
                before = await sotw_converge(client)
                h.publish(world({"blue": 50, "green": 50}, {"blue": BLUE, "green": GREEN}))
                rds = await client.receive()
                assert rds.type_url == ROUTE and rds.version != before[ROUTE].version
                await client.ack(rds, ["routes"])
                await client.expect_silence()

        run(test)

    def test_in_place_release_is_make_before_break(self) -> None:
        """Swapping blue's cluster: union CDS, EDS, (CDS ACK) RDS, (RDS ACK) CDS without the old."""

        async def test() -> None:
            async with ads() as h, h.client() as client:
                await sotw_converge(client)
                h.publish(
                    world({"blue": 100}, {"blue": NEW_BLUE}, {NEW_BLUE: "10.0.0.2:80"}, (BLUE,))
                )
                union = await client.receive()
                assert union.type_url == CLUSTER
                assert sorted(union.resources) == sorted([BLUE_CLUSTER, NEW_BLUE_CLUSTER])
                # Envoy asks EDS for the new cluster; the routes must wait for the CDS ACK.
                await client.request(ENDPOINT, sorted(union.resources), nonce="2", version="x")
                eds = await client.receive()
                assert eds.type_url == ENDPOINT and NEW_BLUE_CLUSTER in eds.resources
                await client.ack(eds, sorted(union.resources))
                await client.expect_silence()
                await client.ack(union)
                rds = await client.receive()
                assert route_clusters(rds) == [NEW_BLUE_CLUSTER]
                await client.expect_silence()  # the old cluster stays until the RDS ACK
                await client.ack(rds, ["routes"])
                final = await client.receive()
                assert final.type_url == CLUSTER and list(final.resources) == [NEW_BLUE_CLUSTER]

        run(test)

    def test_scale_down_moves_routes_first(self) -> None:
        """Removing a cluster: RDS first, CDS removal only after the RDS ACK."""

        async def test() -> None:
            async with ads(BLUE_GREEN) as h, h.client() as client:
                await sotw_converge(client)
                h.publish(world({"green": 100}, {"blue": BLUE, "green": GREEN}))
                rds = await client.receive()
                assert rds.type_url == ROUTE and route_clusters(rds) == [GREEN_CLUSTER]
                await client.expect_silence()
                await client.ack(rds, ["routes"])
                cds = await client.receive()
                assert list(cds.resources) == [GREEN_CLUSTER]

        run(test)

    def test_changes_coalesce_while_a_stage_is_pending(self) -> None:
        """Two changes during an unACKed CDS: one response per type at a time, latest wins."""

        async def test() -> None:
            async with ads() as h, h.client() as client:
                await sotw_converge(client)
                h.publish(BLUE_GREEN)
                cds = await client.receive()
                h.publish(world({"blue": 10, "green": 90}, {"blue": BLUE, "green": GREEN}))
                await client.expect_silence()  # the CDS response is still pending
                await client.ack(cds)
                rds = await client.receive()
                table = rds.resources["routes"].virtual_hosts[0].routes[0].route
                assert [c.weight.value for c in table.weighted_clusters.clusters] == [10, 90]

        run(test)

    def test_stale_nonce_is_ignored(self) -> None:
        """A request carrying an older nonce than the last response gets no answer."""

        async def test() -> None:
            async with ads() as h, h.client() as client:
                got = await sotw_converge(client)
                h.publish(BLUE_GREEN)
                cds = await client.receive()
                await client.request(
                    CLUSTER, version=got[CLUSTER].version, nonce=got[CLUSTER].nonce
                )
                await client.expect_silence()
                await client.ack(cds)  # the current nonce still works
                assert (await client.receive()).type_url in (ENDPOINT, ROUTE)

        run(test)

    def test_fresh_eds_request_is_always_answered(self) -> None:
        """The latest nonce again, after its ACK, is a re-request: answered even if unchanged."""

        async def test() -> None:
            async with ads() as h, h.client() as client:
                got = await sotw_converge(client)
                eds = got[ENDPOINT]
                await client.request(ENDPOINT, [BLUE_CLUSTER], version=eds.version, nonce=eds.nonce)
                again = await client.receive()
                assert again.version == eds.version and again.nonce != eds.nonce

        run(test)

    def test_nack_is_recorded_and_never_resent(self) -> None:
        """A NACKed version is recorded, not sent again (same stream or a new one); the next is."""

        async def test() -> None:
            async with ads() as h:
                async with h.client() as client:
                    got = await sotw_converge(client)
                    h.publish(world({"blue": 50, "green": 50}, {"blue": BLUE, "green": GREEN}))
                    cds = await client.receive()
                    await client.request(
                        CLUSTER, version=got[CLUSTER].version, nonce=cds.nonce, error="bad cluster"
                    )
                    node = h.registry.get("node-1")
                    assert node is not None
                    await client.expect_silence()
                    assert node.last_nack[CLUSTER].message == "bad cluster"
                    assert node.last_nack[CLUSTER].version == cds.version
                    h.publish(world({"blue": 50, "green": 50}, {"blue": BLUE, "green": GREEN}))
                    await client.expect_silence()  # same content, same version: not resent
                # A new stream of the same node, holding the old version: still not resent.
                async with h.client() as client:
                    await client.request(CLUSTER, version=got[CLUSTER].version)
                    await client.expect_silence()
                    # A DNS endpoint changes green's cluster itself: a new CDS version.
                    h.publish(
                        world(
                            {"blue": 50, "green": 50},
                            {"blue": BLUE, "green": GREEN},
                            {GREEN: "green.internal:80"},
                        )
                    )
                    fixed = await client.receive()
                    assert fixed.type_url == CLUSTER and fixed.version != cds.version

        run(test)

    def test_reconnect_with_current_versions_gets_nothing(self) -> None:
        """An Envoy that reconnects holding the current versions is sent nothing (no churn)."""

        async def test() -> None:
            async with ads() as h:
                async with h.client() as client:
                    got = await sotw_converge(client)
                async with h.client() as client:
                    await client.request(CLUSTER, version=got[CLUSTER].version)
                    await client.request(ENDPOINT, [BLUE_CLUSTER], version=got[ENDPOINT].version)
                    await client.request(LISTENER, version=got[LISTENER].version)
                    await client.request(ROUTE, ["routes"], version=got[ROUTE].version)
                    await client.expect_silence(0.5)
                    h.publish(BLUE_GREEN)  # and later changes still arrive
                    assert (await client.receive()).type_url == CLUSTER

        run(test)

    def test_unknown_version_keeps_every_standby_cluster(self) -> None:
        """A node holding a version this server never built gets the union with standby clusters."""

        async def test() -> None:
            scaled = world({"green": 100}, {"blue": BLUE, "green": GREEN})
            async with ads(scaled) as h, h.client() as client:
                await client.request(CLUSTER, version="built-by-someone-else")
                union = await client.receive()
                assert sorted(union.resources) == sorted([BLUE_CLUSTER, GREEN_CLUSTER])
                await client.ack(union)
                await client.request(ROUTE, ["routes"], version="also-unknown")
                rds = await client.receive()
                await client.ack(rds, ["routes"])
                final = await client.receive()
                assert list(final.resources) == [GREEN_CLUSTER]

        run(test)

    def test_recognises_a_version_built_by_another_process(self) -> None:
        """A node already holding this server's target under a version new to it is not stuck.

        After a crash mid-push the node may hold the union the previous process
        sent; the restarted one computes the same union, sends no CDS, and
        still moves the routes on and shrinks the clusters.
        """

        async def test() -> None:
            scaled = world({"green": 100}, {"blue": BLUE, "green": GREEN})
            snapshot = snapshot_of(scaled, TranslateOptions())
            union = plan_clusters(snapshot, None, None, SnapshotCache())
            async with ads(scaled) as h, h.client() as client:
                await client.request(CLUSTER, version=union.version)
                await client.expect_silence()
                await client.request(ROUTE, ["routes"], version="from-the-old-process")
                rds = await client.receive()
                assert route_clusters(rds) == [GREEN_CLUSTER]
                await client.ack(rds, ["routes"])
                final = await client.receive()
                assert list(final.resources) == [GREEN_CLUSTER]

        run(test)

    def test_no_snapshot_no_response(self) -> None:
        """Before the state is loaded nothing is served, not even an empty config."""

        async def test() -> None:
            async with ads(initial=None) as h, h.client() as client:
                await client.request(CLUSTER)
                await client.expect_silence()
                h.publish(BLUE_ONLY)
                assert list((await client.receive()).resources) == [BLUE_CLUSTER]

        run(test)

    def test_first_request_without_node_is_refused(self) -> None:
        """The stream's first request must name the node."""

        async def test() -> None:
            async with ads() as h, h.client() as client:
                await client.request(CLUSTER, with_node=False)
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await client.receive()
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        run(test)

    def test_unknown_type_is_ignored(self) -> None:
        """Garbage type URLs are ignored; the stream keeps working."""

        async def test() -> None:
            async with ads() as h, h.client() as client:
                await client.request("type.googleapis.com/garbage.Type", ["x"])
                await client.expect_silence()
                await client.request(CLUSTER)
                assert (await client.receive()).type_url == CLUSTER

        run(test)


class TestDelta:
    def test_subscribe_ack_and_removal(self) -> None:
        """Wildcard CDS, EDS by name, only changes sent, removals in removed_resources."""

        async def test() -> None:
            async with ads(BLUE_GREEN) as h, h.client(delta=True) as client:
                await client.delta_request(CLUSTER)
                cds = await client.receive()
                assert sorted(cds.resources) == sorted([BLUE_CLUSTER, GREEN_CLUSTER])
                await client.delta_request(ENDPOINT, sorted(cds.resources))
                eds = await client.receive()
                assert sorted(eds.resources) == sorted([BLUE_CLUSTER, GREEN_CLUSTER])
                await client.ack(eds)
                await client.ack(cds)
                await client.delta_request(LISTENER)
                await client.ack(await client.receive())
                await client.delta_request(ROUTE, ["routes"])
                await client.ack(await client.receive())
                await client.expect_silence()

                h.publish(world({"blue": 100}, {"blue": BLUE, "green": GREEN}))
                rds = await client.receive()
                assert rds.type_url == ROUTE and route_clusters(rds) == [BLUE_CLUSTER]
                await client.ack(rds)
                cds = await client.receive()
                assert cds.type_url == CLUSTER
                assert cds.resources == {} and cds.removed == [GREEN_CLUSTER]
                await client.ack(cds)
                await client.delta_request(ENDPOINT, unsubscribe=[GREEN_CLUSTER])
                await client.expect_silence()

        run(test)

    def test_endpoint_change_sends_one_assignment(self) -> None:
        """An endpoint change sends just that cluster's assignment."""

        async def test() -> None:
            async with ads(BLUE_GREEN) as h, h.client(delta=True) as client:
                await client.delta_request(CLUSTER)
                cds = await client.receive()
                await client.ack(cds)
                await client.delta_request(ENDPOINT, sorted(cds.resources))
                await client.ack(await client.receive())
                h.publish(
                    world(
                        {"blue": 90, "green": 10},
                        {"blue": BLUE, "green": GREEN},
                        {GREEN: "10.0.0.7:80"},
                    )
                )
                eds = await client.receive()
                assert eds.type_url == ENDPOINT and list(eds.resources) == [GREEN_CLUSTER]

        run(test)

    def test_reconnect_with_initial_versions(self) -> None:
        """Initial versions that match mean no response; a re-subscribe later means a resend."""

        async def test() -> None:
            async with ads() as h:
                held: dict[str, dict[str, str]] = {}
                async with h.client(delta=True) as client:
                    await client.delta_request(CLUSTER)
                    cds = await client.receive()
                    await client.ack(cds)
                    await client.delta_request(ENDPOINT, [BLUE_CLUSTER])
                    eds = await client.receive()
                    await client.ack(eds)
                    snapshot = h.cache.snapshot
                    assert snapshot is not None
                    held[CLUSTER] = snapshot.clusters.versions()
                    held[ENDPOINT] = {
                        BLUE_CLUSTER: snapshot.endpoints.resources[BLUE_CLUSTER].version
                    }
                async with h.client(delta=True) as client:
                    await client.delta_request(CLUSTER, initial_versions=held[CLUSTER])
                    await client.delta_request(
                        ENDPOINT, [BLUE_CLUSTER], initial_versions=held[ENDPOINT]
                    )
                    await client.expect_silence(0.5)
                    await client.delta_request(ENDPOINT, [BLUE_CLUSTER])  # re-subscribe
                    again = await client.receive()
                    assert list(again.resources) == [BLUE_CLUSTER]

        run(test)

    def test_nack_is_not_resent(self) -> None:
        """A NACKed delta response is recorded and its version not sent again."""

        async def test() -> None:
            async with ads() as h, h.client(delta=True) as client:
                await client.delta_request(CLUSTER)
                await client.ack(await client.receive())
                h.publish(BLUE_GREEN)
                cds = await client.receive()
                await client.delta_request(CLUSTER, nonce=cds.nonce, error="no thanks")
                await client.expect_silence()
                h.publish(BLUE_GREEN)
                await client.expect_silence()
                node = h.registry.get("node-1")
                assert node is not None and node.last_nack[CLUSTER].message == "no thanks"

        run(test)
