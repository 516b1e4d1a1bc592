"""From decoded flushes to what operators read: totals by tag (attributed when a flush
arrives), the Prometheus families, GetTrafficMetrics and its renderings."""

from __future__ import annotations

import json

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.worlds import context
from xds_server.api.traffic_metrics import checked_window, traffic_metrics
from xds_server.cli import render
from xds_server.errors import InvalidRequest
from xds_server.model import operations as ops
from xds_server.model.names import parse_endpoint
from xds_server.model.state import Mirror, World
from xds_server.traffic.book import TrafficBook, attribution_from
from xds_server.traffic.exposition import TrafficCollector
from xds_server.traffic.flush import ClusterFlush, Latency, TrafficFlush
from xds_server.traffic.windows import TrafficWindows
from xds_server.translate import cluster_name

NOW = 1_000.0


def _world() -> World:
    """default: blue 90 / green 10, 5% shadowed to green."""
    ctx = context()
    world = World()
    endpoint = [parse_endpoint("10.0.0.1:80")]
    for tag in ("blue", "green"):
        world = ops.apply_deployment(
            world, ctx, service="default", endpoints=endpoint, deployment_tag=tag
        ).world
    weights = [("blue", 90), ("green", 10)]
    return ops.set_traffic(
        world, ctx, service="default", weights=weights, mirrors=[Mirror("green", 500)]
    ).world


def _cluster(world: World, tag: str) -> str:
    return cluster_name("default", dict(world.bindings_of("default"))[tag])


def _flush(codes: tuple[int, ...], shadow: tuple[int, ...] = (0,) * 5) -> ClusterFlush:
    latency = Latency((10.0, 100.0), (sum(codes), 0, 0), sum_ms=5.0 * sum(codes))
    return ClusterFlush(real=TrafficFlush(codes, latency), shadow=TrafficFlush(shadow))


class Book:
    def __init__(self) -> None:
        self.world: World | None = _world()
        self.windows = TrafficWindows()
        self.book = TrafficBook(self.windows, attribution_from(lambda: self.world))

    def flushes(self, seconds: int, clusters: dict[str, ClusterFlush], envoy: str = "e1") -> None:
        for second in range(seconds):
            self.book.record(envoy, NOW - seconds + second + 0.5, clusters)


@pytest.fixture
def b() -> Book:
    return Book()


def test_totals_follow_the_tag_a_cluster_held_when_its_flush_came(b: Book) -> None:
    assert b.world is not None
    blue, green = _cluster(b.world, "blue"), _cluster(b.world, "green")
    b.flushes(3, {blue: _flush((0, 9, 0, 0, 1)), green: _flush((0, 1, 0, 0, 0), (0, 2, 0, 0, 0))})
    b.flushes(1, {"xds_cluster": _flush((0, 5, 0, 0, 0)), "nope_x": _flush((0, 5, 0, 0, 0))})
    requests, latency = b.book.totals.snapshot()
    assert requests == {
        ("default", "blue", "real", 2): 27,
        ("default", "blue", "real", 5): 3,
        ("default", "green", "real", 2): 3,
        ("default", "green", "shadow", 2): 6,
    }
    assert latency[("default", "blue", "real")].counts == [30, 0, 0]
    assert latency[("default", "blue", "real")].sum_ms == 150.0
    # Before the world is published nothing can be attributed: nothing is counted.
    b.world = None
    b.flushes(1, {blue: _flush((0, 9, 0, 0, 1))})
    assert b.book.totals.snapshot()[0] == requests


def test_prometheus_families_by_tag(b: Book) -> None:
    assert b.world is not None
    blue = _cluster(b.world, "blue")
    b.flushes(2, {blue: _flush((0, 9, 0, 0, 1))})
    registry = CollectorRegistry()
    registry.register(TrafficCollector(lambda: b.world, b.book.totals))
    text = generate_latest(registry).decode()
    found = {f.name: f for f in text_string_to_metric_families(text)}
    weights = {s.labels["tag"]: s.value for s in found["xds_traffic_weight"].samples}
    assert weights == {"blue": 90, "green": 10}
    assert [(s.labels["tag"], s.value) for s in found["xds_mirror_percent"].samples] == [
        ("green", 5)
    ]
    info = {
        s.labels["tag"]: s.labels["deployment_id"] for s in found["xds_deployment_info"].samples
    }
    assert info == dict(b.world.bindings_of("default"))
    counts = {
        s.labels["code_class"]: s.value
        for s in found["xds_tag_requests"].samples
        if s.labels["tag"] == "blue"
    }
    assert counts == {"2xx": 18, "5xx": 2}
    buckets = {
        s.labels["le"]: s.value
        for s in found["xds_tag_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets == {"0.01": 20, "0.1": 20, "+Inf": 20}
    total = next(
        s.value
        for s in found["xds_tag_request_duration_seconds"].samples
        if s.name.endswith("_sum")
    )
    assert total == pytest.approx(0.1)


def test_traffic_metrics_per_tag_and_no_data_apart_from_zero(b: Book) -> None:
    assert b.world is not None
    blue = _cluster(b.world, "blue")
    b.flushes(10, {blue: _flush((0, 90, 0, 0, 10))})
    reply = traffic_metrics(b.world, "default", b.windows, 10, NOW)
    data = render.traffic_metrics_data(reply)
    by_tag = {t["tag"]: t for t in data["tags"]}
    assert by_tag["blue"]["requests_per_second"] == pytest.approx(100)
    assert by_tag["blue"]["error_rate"] == pytest.approx(0.10)
    assert by_tag["blue"]["weight"] == 90 and by_tag["blue"]["envoys_reporting"] == 1
    # No Envoy mentioned green's cluster: no data (null), not zero traffic.
    assert by_tag["green"]["requests_per_second"] is None
    assert by_tag["green"]["error_rate"] is None and by_tag["green"]["mirror_percent"] == 5
    assert data["envoys_reporting"] == 1 and data["complete"] is True
    json.loads(render.traffic_metrics(reply, "json", compact=True))
    assert yaml.safe_load(render.traffic_metrics(reply, "yaml"))["service"] == "default"
    table = render.traffic_metrics(reply, "table")
    assert "90.00%" not in table and "10.00%" in table and "1 Envoy reporting" in table


def test_a_silent_envoy_makes_the_window_incomplete(b: Book) -> None:
    assert b.world is not None
    blue = _cluster(b.world, "blue")
    b.flushes(10, {blue: _flush((0, 10, 0, 0, 0))}, envoy="e1")
    b.book.record("e2", NOW - 9.5, {blue: _flush((0, 10, 0, 0, 0))})  # then silent
    reply = traffic_metrics(b.world, "default", b.windows, 10, NOW)
    assert reply.missing_intervals >= 5
    table = render.traffic_metrics(reply, "table")
    assert "incomplete" in table and "not counted" in table


def test_no_envoy_at_all_says_no_data(b: Book) -> None:
    assert b.world is not None
    reply = traffic_metrics(b.world, "default", b.windows, 30, NOW)
    assert "no data" in render.traffic_metrics(reply, "table")
    assert render.traffic_metrics_data(reply)["complete"] is False


@pytest.mark.parametrize(("asked", "window"), [(0, 30.0), (1, 1.0), (300, 300.0)])
def test_windows_in_range(asked: float, window: float) -> None:
    assert checked_window(asked, 300) == window


@pytest.mark.parametrize("asked", [0.5, 301, float("nan"), float("inf"), -1])
def test_windows_out_of_range_are_refused(asked: float) -> None:
    with pytest.raises(InvalidRequest, match="--window must be from 1s to 300s"):
        checked_window(asked, 300)


def test_an_unknown_service_is_not_found(b: Book) -> None:
    assert b.world is not None
    with pytest.raises(Exception, match="service 'shop' does not exist"):
        traffic_metrics(b.world, "shop", b.windows, 30, NOW)
