"""The pipeline is incremental and still exact: built change by change, the snapshot
equals one built from scratch; a change translates only its service; the cache's
memory stays within its budget; a replica that missed notices catches up exactly."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.worlds import context
from xds_server.errors import XdsServerError
from xds_server.model import operations as ops
from xds_server.model.names import parse_endpoint
from xds_server.model.state import DeploymentState, HistoryEntry, Mirror, World
from xds_server.store.committed import CommittedWorld
from xds_server.store.postgres import PostgresStore
from xds_server.translate import TranslateOptions, translate
from xds_server.xds.builder import SnapshotBuilder, snapshot_of
from xds_server.xds.cache import RECENT_RESOURCE_BYTES, RECENT_SET_BYTES, SnapshotCache
from xds_server.xds.resources import CLUSTER, ROUTE, Resource, ResourceSet
from xds_server.xds.snapshot import Snapshot

OPTIONS = TranslateOptions()


def _content(snapshot: Snapshot) -> dict[str, Any]:
    """Everything a snapshot says, independent of dict order: names, bytes, versions."""
    sets = {
        "listeners": snapshot.listeners,
        "routes": snapshot.routes,
        "clusters": snapshot.clusters,
        "standby": snapshot.standby_clusters,
        "endpoints": snapshot.endpoints,
    }
    return {
        kind: (
            resource_set.version,
            {n: (r.version, r.value, r.references) for n, r in resource_set.resources.items()},
        )
        for kind, resource_set in sets.items()
    } | {"problems": snapshot.problems()}


SERVICES = ("default", "shop", "cart")
_step = st.one_of(
    st.tuples(st.just("apply"), st.sampled_from(SERVICES), st.sampled_from(("blue", "green"))),
    st.tuples(st.just("bluegreen"), st.sampled_from(SERVICES)),
    st.tuples(st.just("canary"), st.sampled_from(SERVICES), st.integers(0, 100), st.booleans()),
    st.tuples(st.just("promote"), st.sampled_from(SERVICES)),
    st.tuples(st.just("rollback"), st.sampled_from(SERVICES)),
    st.tuples(st.just("endpoints"), st.integers(0, 20), st.sampled_from(("10.0.0.2:80", "a.b:80"))),
    st.tuples(st.just("delete"), st.integers(0, 20)),
    st.tuples(st.just("domains"), st.sampled_from(SERVICES), st.sampled_from(("x.com", "y.com"))),
)


class _History:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], HistoryEntry] = {}

    def entry(self, service: str, revision: int) -> HistoryEntry | None:
        return self.entries.get((service, revision))


def _step_change(world: World, history: _History, ctx: ops.Context, step: tuple) -> Any:
    kind, *rest = step
    ids = sorted(world.deployments)
    if kind in ("apply", "bluegreen"):
        return ops.apply_deployment(
            world,
            ctx,
            service=rest[0],
            endpoints=[parse_endpoint("10.0.0.1:80")],
            deployment_tag=rest[1] if kind == "apply" else None,
            bluegreen=kind == "bluegreen",
            in_place=True,  # releases onto a tag with traffic are among the steps
        )
    if kind == "canary":
        service, share, mirrored = rest
        tags = [tag for tag, _ in world.bindings_of(service)][:2]
        weights = (
            [(tags[0], 100 - share), (tags[1], share)]
            if len(tags) == 2
            else [(t, 100) for t in tags]
        )
        mirrors = [Mirror(tags[1], 500)] if mirrored and len(tags) == 2 and share < 100 else []
        return ops.set_traffic(world, ctx, service=service, weights=weights, mirrors=mirrors)
    if kind == "promote":
        return ops.promote(world, ctx, service=rest[0])
    if kind == "rollback":
        return ops.rollback(world, history, ctx, service=rest[0])
    if kind == "delete":  # a scaled-down one: an active one is refused
        idle = [i for i in ids if world.deployments[i].state is DeploymentState.SCALED_DOWN]
        if not idle:
            raise XdsServerError("nothing scaled down")
        return ops.delete_deployment(world, deployment_id=idle[rest[0] % len(idle)])
    if kind == "endpoints":
        if not ids:
            raise XdsServerError("nothing yet")
        deployment_id = ids[rest[0] % len(ids)]
        return ops.set_endpoints(
            world, deployment_id=deployment_id, endpoints=[parse_endpoint(rest[1])]
        )
    return ops.set_domains(world, service=rest[0], domains=[rest[1]])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_step, min_size=5, max_size=40))
def test_built_change_by_change_equals_built_from_scratch(steps: list[tuple]) -> None:
    """After every change, the incremental snapshot (told only what the change touched)
    says exactly what a fresh build of the same world says, bytes and versions included;
    and its route table is byte for byte the translator's RouteConfiguration."""
    world, history, ctx = World(), _History(), context()
    builder = SnapshotBuilder(OPTIONS)
    builder.build(world)
    for step in steps:
        try:
            change = _step_change(world, history, ctx, step)
        except XdsServerError:
            continue
        world = change.world
        for entry in change.history:
            history.entries[(entry.service, entry.revision)] = entry
        incremental = builder.build(world, {change.touched})
        assert _content(incremental) == _content(snapshot_of(world, OPTIONS)), step
        [table] = incremental.routes.resources.values()
        expected = translate(world, OPTIONS).routes[0].SerializeToString(deterministic=True)
        assert table.value == expected, step


def _world_of(services: int) -> World:
    ctx, world = context(), World()
    for i in range(services):
        name = f"s{i}"
        world = ops.set_domains(world, service=name, domains=[f"{name}.example.com"]).world
        for tag in ("blue", "green"):
            endpoints = [parse_endpoint(f"10.0.{i}.{1 if tag == 'blue' else 2}:80")]
            world = ops.apply_deployment(
                world, ctx, service=name, endpoints=endpoints, deployment_tag=tag
            ).world
    return world


@pytest.mark.parametrize("size", [10, 300, 70_000])  # one-, two- and three-byte lengths
def test_fragments_are_what_protobuf_serialises(size: int) -> None:
    """Fragments and responses are joined from bytes, not built as messages: they must
    be exactly what protobuf would serialise."""
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.service.discovery.v3 import discovery_pb2

    from xds_server.xds.resources import Resource, ResourceSet, delta_response

    resource = Resource.build(CLUSTER, "c" * size, cluster_pb2.Cluster(name="c" * size))
    assert (
        resource.sotw_fragment
        == discovery_pb2.DiscoveryResponse(resources=[resource.packed]).SerializeToString()
    )
    wrapped = discovery_pb2.Resource(
        name=resource.name, version=resource.version, resource=resource.packed
    )
    assert resource.delta_fragment == (
        discovery_pb2.DeltaDiscoveryResponse(resources=[wrapped]).SerializeToString()
    )
    sotw = discovery_pb2.DiscoveryResponse.FromString(
        ResourceSet.of(CLUSTER, [resource]).sotw_response("7")
    )
    assert (sotw.nonce, list(sotw.resources)) == ("7", [resource.packed])
    delta = discovery_pb2.DeltaDiscoveryResponse.FromString(
        delta_response(CLUSTER, "v", "8", [resource], ["gone"])
    )
    assert (delta.nonce, list(delta.removed_resources), list(delta.resources)) == (
        "8",
        ["gone"],
        [wrapped],
    )


def test_a_change_translates_only_its_service() -> None:
    """A weight change translates one service and no deployment; an apply one service
    and one deployment: whatever the size of the world."""
    world = _world_of(50)
    builder = SnapshotBuilder(OPTIONS)
    before = builder.build(world)
    counts = builder.translations
    assert (counts.services, counts.deployments) == (50, 100)

    change = ops.set_traffic(world, context(), service="s7", weights=[("blue", 90), ("green", 10)])
    after = builder.build(change.world, {change.touched})
    assert (counts.services, counts.deployments) == (51, 100)
    assert after.clusters is before.clusters  # unchanged sets are the same objects
    assert after.endpoints is before.endpoints
    assert after.routes.version != before.routes.version

    applied = ops.apply_deployment(
        change.world,
        context(),
        service="s8",
        endpoints=[parse_endpoint("10.9.9.9:80")],
        in_place=True,
    )
    builder.build(applied.world, {applied.touched})
    assert (counts.services, counts.deployments) == (52, 101)


def _cluster(name: str, body: int) -> Resource:
    return Resource(CLUSTER, name, f"v{body}", bytes([body]) * (1 + body % 7))


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 9)),
    st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(0, 9))),
    st.lists(st.sampled_from("abcdefg")),
)
def test_a_changed_set_equals_the_set_built_whole(
    base: dict[str, int], put: list[tuple[str, int]], removed: list[str]
) -> None:
    """Whatever is put and removed (a name in both, a name put twice, absent names),
    the changed set has the content, version and size of one built from scratch, and
    says exactly what it added and took away."""
    before = ResourceSet.of(CLUSTER, [_cluster(n, b) for n, b in base.items()])
    after = before.changed([_cluster(n, b) for n, b in put], removed)
    expected = {n: _cluster(n, b) for n, b in base.items()}
    for name in removed:
        expected.pop(name, None)
    expected |= {n: _cluster(n, b) for n, b in put}
    whole = ResourceSet.of(CLUSTER, expected.values())
    assert dict(after.resources) == dict(whole.resources)
    assert (after.version, after.size) == (whole.version, whole.size)
    if after is not before:
        assert set(after.removed) == set(base) - set(expected)
        assert {r.name for r in after.put} == {n for n, _ in put}


def test_the_cache_keeps_to_its_budget_and_recognises_recent_versions() -> None:
    """Over 1,000 changes the bytes the cache keeps beyond the current snapshot stay
    within its budget, and a version a node held a few changes ago is still known."""
    world = _world_of(200)
    builder, cache = SnapshotBuilder(OPTIONS), SnapshotCache()
    cache.set_snapshot(builder.build(world))
    ctx, seen = context(), []
    for i in range(1000):
        share = 1 + i % 99
        change = ops.set_traffic(
            world, ctx, service=f"s{i % 200}", weights=[("blue", 100 - share), ("green", share)]
        )
        world = change.world
        cache.set_snapshot(builder.build(world, {change.touched}))
        seen.append(cache.snapshot.routes.version)  # type: ignore[union-attr]
        assert cache.retained_bytes <= RECENT_SET_BYTES + RECENT_RESOURCE_BYTES
    for recent in seen[-5:]:
        assert cache.known_set(ROUTE, recent) is not None
    assert cache.known_set(CLUSTER, cache.snapshot.clusters.version) is not None  # type: ignore[union-attr]


def test_what_changed_since_a_sequence() -> None:
    committed = CommittedWorld()
    world = World()
    assert committed.since(-1) is None
    committed.advance(world, 1, None, True)
    committed.advance(world, 2, frozenset({"a"}), False)
    committed.advance(world, 3, frozenset({"b"}), False)
    update = committed.since(1)
    assert update is not None and (update.sequence, update.services, update.tokens) == (
        3,
        frozenset({"a", "b"}),
        False,
    )
    assert committed.since(0).services is None  # type: ignore[union-attr]  # a full step
    committed.advance(world, 5, frozenset({"c"}), False)  # 4 never seen: a gap
    assert committed.since(3).services is None  # type: ignore[union-attr]
    assert committed.since(5).services == frozenset()  # type: ignore[union-attr]


def test_a_replica_that_missed_notices_catches_up_exactly(postgres: Any) -> None:
    """Two stores on one database: changes go through the first; the second hears of
    some and misses others, out of order. Every catch-up reloads only what the change
    log names, and ends in the same world, and the same snapshot bytes, as a fresh
    load built from scratch."""
    url = postgres.database()

    async def run() -> None:
        writer, reader = await PostgresStore.open(url), await PostgresStore.open(url)
        try:
            builder, held = SnapshotBuilder(OPTIONS), -1
            ctx = context()
            for i in range(40):
                service = f"s{i % 5}"
                if i < 10:
                    await writer.transact(
                        lambda w, _h, s=service: ops.apply_deployment(
                            w,
                            ctx,
                            service=s,
                            endpoints=[parse_endpoint("10.0.0.1:80")],
                            in_place=True,
                        )
                    )
                else:
                    await writer.transact(
                        lambda w, _h, s=service, n=i: ops.set_domains(
                            w, service=s, domains=[f"{s}-{n}.example.com"]
                        )
                    )
                if i % 7 in (0, 3):  # the notices that arrive
                    update = await reader.updates_since(held)
                    assert update.services is not None or held == -1
                    builder.build(update.world, update.services)
                    held = update.sequence
            update = await reader.updates_since(held)
            incremental = builder.build(update.world, update.services)
            fresh = await PostgresStore.open(url)
            try:
                reference = await fresh.load()
            finally:
                await fresh.close()
            assert update.world == reference
            assert _content(incremental) == _content(snapshot_of(reference, OPTIONS))
        finally:
            await writer.close()
            await reader.close()

    asyncio.run(run())


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_reads_and_writes_do_not_reload_the_world(engine: str, tmp_path: Any, request: Any) -> None:
    """After the first load, a change and a read each cost what they touch: the
    store's committed world moves forward with each change, never loaded again."""
    from xds_server.store import rows
    from xds_server.store.sqlite import SqliteStore

    loads: list[int] = []
    original = rows.load_world

    def counting(db: Any) -> World:
        loads.append(1)
        return original(db)

    async def run() -> None:
        if engine == "sqlite":
            store: Any = await SqliteStore.open(tmp_path / "state.db")
        else:
            store = await PostgresStore.open(request.getfixturevalue("postgres").database())
        ctx = context()
        try:
            await store.load()
            rows.load_world = counting  # type: ignore[assignment]
            for i in range(5):
                await store.transact(
                    lambda w, _h, n=i: ops.apply_deployment(
                        w, ctx, service=f"s{n}", endpoints=[parse_endpoint("10.0.0.1:80")]
                    )
                )
                await store.load()
                await store.updates_since(0)
        finally:
            rows.load_world = original  # type: ignore[assignment]
            await store.close()

    asyncio.run(run())
    assert loads == []
