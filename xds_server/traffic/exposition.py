"""Traffic by tag on /metrics: weights, mirrors and deployments from the world, requests
and latency from the Envoys' sinks, so a dashboard shows tags, not deployment ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from xds_server.model.state import World
from xds_server.traffic.book import LatencyTotal, TagTotals


class TrafficCollector(Collector):
    """Collected at each scrape from the world as published and the running totals.

    The world's series are rebuilt per scrape, so a tag that leaves a policy leaves
    /metrics at once (no stale label set to forget).
    """

    def __init__(self, world_of: Callable[[], World | None], totals: TagTotals) -> None:
        self._world_of = world_of
        self._totals = totals

    def collect(self) -> Iterator[Metric]:
        yield from self._intent(self._world_of())
        requests, latency = self._totals.snapshot()
        counter = CounterMetricFamily(
            "xds_tag_requests",
            "Requests Envoys completed to a tag's deployment, as their stats sinks report "
            "them; traffic is real or shadow (mirrored)",
            labels=["service", "tag", "traffic", "code_class"],
        )
        for (service, tag, traffic, code_class), count in sorted(requests.items()):
            counter.add_metric([service, tag, traffic, f"{code_class}xx"], count)
        yield counter
        histogram = HistogramMetricFamily(
            "xds_tag_request_duration_seconds",
            "Upstream request time to a tag's deployment, from Envoy's histograms",
            labels=["service", "tag", "traffic"],
        )
        for (service, tag, traffic), total in sorted(latency.items()):
            histogram.add_metric([service, tag, traffic], _buckets(total), total.sum_ms / 1000)
        yield histogram

    def _intent(self, world: World | None) -> Iterator[Metric]:
        weight = GaugeMetricFamily(
            "xds_traffic_weight",
            "A tag's share of a service's traffic, percent",
            labels=["service", "tag"],
        )
        mirror = GaugeMetricFamily(
            "xds_mirror_percent",
            "The percentage of a service's requests shadowed to a tag",
            labels=["service", "tag"],
        )
        info = GaugeMetricFamily(
            "xds_deployment_info",
            "1 for the deployment that holds a tag of a service",
            labels=["service", "tag", "deployment_id"],
        )
        services = sorted(world.services.values(), key=lambda s: s.name) if world else []
        for service in services:
            for tag, share in service.policy.weights:
                weight.add_metric([service.name, tag], share)
            for shadow in service.policy.mirrors:
                mirror.add_metric([service.name, shadow.tag], shadow.hundredths / 100)
            assert world is not None
            for tag, deployment_id in world.bindings_of(service.name):
                info.add_metric([service.name, tag, deployment_id], 1)
        yield from (weight, mirror, info)


def _buckets(total: LatencyTotal) -> list[tuple[str, float]]:
    """Cumulative buckets in seconds, ending with +Inf (Envoy's overflow included)."""
    buckets = []
    running = 0
    for bound, count in zip(total.bounds_ms, total.counts, strict=False):
        running += count
        buckets.append((_le(bound / 1000), float(running)))
    buckets.append(("+Inf", float(sum(total.counts))))
    return buckets


def _le(seconds: float) -> str:
    """A bucket bound as Prometheus' own clients write it (``0.0005``, ``1.0``)."""
    return repr(float(seconds))
