"""The snapshot cache on its own: what it refuses, whom it wakes, what it recognises,
and what it shares between nodes."""

from __future__ import annotations

import dataclasses

import pytest

from tests.support.worlds import context
from xds_server.errors import InconsistentSnapshot
from xds_server.model import operations as ops
from xds_server.model.names import parse_endpoint
from xds_server.model.state import World
from xds_server.translate import TranslateOptions
from xds_server.xds.builder import SnapshotBuilder, snapshot_of
from xds_server.xds.cache import SnapshotCache
from xds_server.xds.resources import CLUSTER, ENDPOINT, ROUTE, ResourceSet
from xds_server.xds.snapshot import Snapshot

OPTIONS = TranslateOptions()


def _canary(world: World, share: int) -> World:
    weights = [("blue", 100 - share), ("green", share)]
    return ops.set_traffic(world, context(), service="shop", weights=weights).world


@pytest.fixture
def world() -> World:
    """One service with a blue and a green deployment (EDS: IP endpoints)."""
    ctx, world = context(), World()
    world = ops.set_domains(world, service="shop", domains=["shop.example.com"]).world
    for tag, endpoint in (("blue", "10.0.0.1:80"), ("green", "10.0.0.2:80")):
        world = ops.apply_deployment(
            world, ctx, service="shop", endpoints=[parse_endpoint(endpoint)], deployment_tag=tag
        ).world
    return world


def _without_clusters(snapshot: Snapshot) -> Snapshot:
    return dataclasses.replace(snapshot, clusters=ResourceSet.of(CLUSTER, []), checked=None)


def test_an_inconsistent_snapshot_is_refused_and_the_current_one_stays(world: World) -> None:
    cache, woken = SnapshotCache(), []
    good = snapshot_of(world, OPTIONS)
    cache.set_snapshot(good)
    cache.watch(lambda: woken.append(1))
    with pytest.raises(InconsistentSnapshot, match="a route uses cluster shop_"):
        cache.set_snapshot(_without_clusters(good))
    assert cache.snapshot is good and woken == []
    cache.set_snapshot(_without_clusters(good), check=False)  # tests only: below validation
    assert cache.snapshot is not good and woken == [1]


def test_every_watcher_is_woken_until_it_stops_watching(world: World) -> None:
    cache, woken = SnapshotCache(), []
    stop_a = cache.watch(lambda: woken.append("a"))
    cache.watch(lambda: woken.append("b"))
    cache.set_snapshot(snapshot_of(world, OPTIONS))
    stop_a()
    cache.set_snapshot(snapshot_of(_canary(world, 10), OPTIONS))
    assert sorted(woken) == ["a", "b", "b"]


def test_versions_a_node_held_before_a_change_are_recognised(world: World) -> None:
    """After a weight change, the previous route table and its resource (what a node
    reconnecting with it reports) are still known; a made-up version is not."""
    cache, builder = SnapshotCache(), SnapshotBuilder(OPTIONS)
    before = builder.build(world)
    cache.set_snapshot(before)
    cache.set_snapshot(builder.build(_canary(world, 10), {"shop"}))
    assert cache.known_set(ROUTE, before.routes.version) is not None
    [table] = before.routes.resources.values()
    assert cache.known_resource(ROUTE, table.name, table.version) == table
    assert cache.known_set(ROUTE, "0" * 16) is None
    assert cache.known_resource(ROUTE, table.name, "0" * 16) is None


def test_sets_and_subsets_are_built_once_and_shared(world: World) -> None:
    """Every node that asks for the same resources gets the same set object."""
    cache = SnapshotCache()
    snapshot = snapshot_of(world, OPTIONS)
    cache.set_snapshot(snapshot)
    resources = list(snapshot.clusters.resources.values())
    assert cache.resource_set(CLUSTER, resources) is snapshot.clusters
    name = sorted(snapshot.endpoints.resources)[0]
    first = cache.subset(snapshot.endpoints, [name])
    assert first.names == {name} and first.type_url == ENDPOINT
    assert cache.subset(snapshot.endpoints, [name]) is first
    assert cache.subset(snapshot.endpoints, snapshot.endpoints.names) is snapshot.endpoints
