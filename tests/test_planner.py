"""Make-before-break planning as a pure function of snapshot and what a node holds."""

from __future__ import annotations

from tests.support.worlds import BLUE, GREEN, NEW_BLUE, world
from xds_server.translate import TranslateOptions, cluster_name
from xds_server.xds.builder import snapshot_of
from xds_server.xds.cache import PlanMemo, SnapshotCache
from xds_server.xds.planner import PLANS, READERS, live_references, plan_clusters, plan_routes
from xds_server.xds.resources import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, ROUTE, ResourceSet
from xds_server.xds.subscription import Subscription

OLD, NEW = cluster_name("default", BLUE), cluster_name("default", NEW_BLUE)
SNAPSHOT = snapshot_of(
    world({"blue": 100}, {"blue": NEW_BLUE}, untagged=(BLUE,)), TranslateOptions()
)
OLD_SNAPSHOT = snapshot_of(world({"blue": 100}, {"blue": BLUE}), TranslateOptions())
OLD_ROUTES = dict(OLD_SNAPSHOT.routes.resources)


CACHE = SnapshotCache()


def names(planned: ResourceSet) -> list[str]:
    return sorted(planned.resources)


class TestPlanClusters:
    def test_fresh_node_gets_the_desired_clusters(self) -> None:
        """A node holding nothing gets exactly the desired clusters."""
        assert names(plan_clusters(SNAPSHOT, {}, {}, CACHE)) == [NEW]

    def test_routed_old_cluster_is_kept(self) -> None:
        """While live routes use the old cluster, it stays beside the new one."""
        held = {OLD: OLD_SNAPSHOT.clusters.resources[OLD]}
        assert names(plan_clusters(SNAPSHOT, held, OLD_ROUTES, CACHE)) == sorted([OLD, NEW])

    def test_old_cluster_dropped_once_routes_moved(self) -> None:
        """After the node accepted routes that no longer use it, it goes."""
        held = {OLD: None, NEW: None}
        assert names(plan_clusters(SNAPSHOT, held, dict(SNAPSHOT.routes.resources), CACHE)) == [NEW]

    def test_unknown_routes_keep_everything_held(self) -> None:
        """Routes of unknown content: keep every held cluster that still exists."""
        held = {OLD: None}
        assert names(plan_clusters(SNAPSHOT, held, {"routes": None}, CACHE)) == sorted([OLD, NEW])
        assert live_references({"routes": None}) is None

    def test_unknown_clusters_add_every_standby(self) -> None:
        """Nothing known at all: the desired clusters plus every standby cluster."""
        assert names(plan_clusters(SNAPSHOT, None, None, CACHE)) == sorted([OLD, NEW])

    def test_deleted_deployment_cannot_be_kept(self) -> None:
        """A cluster whose deployment is gone has no definition left to keep."""
        held = {cluster_name("default", GREEN): None}
        assert names(plan_clusters(SNAPSHOT, held, None, CACHE)) == [NEW]


class TestPlanRoutes:
    def test_held_back_until_clusters_are_held(self) -> None:
        """New routes wait until the node holds (has warmed) every cluster they use."""
        assert plan_routes(SNAPSHOT, None) is None
        assert plan_routes(SNAPSHOT, {OLD: None}) is None
        assert plan_routes(SNAPSHOT, {OLD: None, NEW: None}) is SNAPSHOT.routes


class TestPlanTable:
    def test_every_plan_reads_its_own_subscription(self) -> None:
        """A type's first request (``requested``) must redo that type's plan."""
        assert all(type_url in rule.reads for type_url, rule in PLANS.items())

    def test_readers_are_the_plans_that_read_a_type(self) -> None:
        """CDS keeps what the held routes use; RDS waits for the held clusters."""
        assert READERS == {
            CLUSTER: (CLUSTER, ROUTE),
            ENDPOINT: (ENDPOINT,),
            LISTENER: (LISTENER,),
            ROUTE: (CLUSTER, ROUTE),
        }

    def test_memo_keeps_a_plan_until_what_it_reads_changes(self) -> None:
        cache = SnapshotCache()
        cache.set_snapshot(OLD_SNAPSHOT)
        subs = {type_url: Subscription(type_url, held={}) for type_url in PUSH_ORDER}
        memo = PlanMemo(cache, subs)
        assert memo.target(CLUSTER) is None  # not asked for yet
        subs[CLUSTER].requested = True
        assert memo.target(CLUSTER) is None  # kept: nobody said CDS changed
        memo.forget(CLUSTER)
        assert memo.target(CLUSTER) is OLD_SNAPSHOT.clusters
        cache.set_snapshot(SNAPSHOT)  # new clusters: a new input stamp
        assert memo.target(CLUSTER) is SNAPSHOT.clusters
