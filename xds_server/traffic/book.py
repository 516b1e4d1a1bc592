"""Where every decoded flush goes: the sliding windows by cluster, and running totals by
service and tag for Prometheus.

A cluster is one deployment (``cluster_name``), whose tag can move with the next
apply, so totals are attributed by tag when a flush arrives: within one flush
interval of when its requests were served, and before any later change of tag.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from xds_server.model.state import World
from xds_server.traffic.flush import CODE_CLASSES, ClusterFlush, TrafficFlush
from xds_server.traffic.windows import TrafficWindows
from xds_server.translate.translator import parse_cluster_name

# cluster name → (service, tag) now, or None for a cluster that holds no tag
Attribution = Callable[[str], tuple[str, str] | None]

REAL = "real"
SHADOW = "shadow"


def attribution_from(world_of: Callable[[], World | None]) -> Attribution:
    """Attribute clusters by the world ``world_of`` returns at the moment of asking."""

    def attribute(cluster: str) -> tuple[str, str] | None:
        parsed = parse_cluster_name(cluster)
        world = world_of()
        if parsed is None or world is None:
            return None
        deployment = world.deployments.get(parsed[1])
        if deployment is None or deployment.service != parsed[0] or deployment.tag is None:
            return None
        return deployment.service, deployment.tag

    return attribute


@dataclass
class LatencyTotal:
    """A tag's latency since start: cumulative counts at Envoy's bounds, and the sum."""

    bounds_ms: tuple[float, ...]
    counts: list[int]  # per bucket, plus the overflow last
    sum_ms: float = 0.0


@dataclass
class TagTotals:
    """Requests and latency per (service, tag, traffic) since start, for Prometheus.

    Bounded by the world: one entry per tag a flush named, times two kinds of
    traffic and five code classes. Written on the event loop, read by the
    /metrics thread through ``snapshot`` (under a lock: a scrape sees whole flushes).
    """

    requests: dict[tuple[str, str, str, int], int] = field(default_factory=dict)
    latency: dict[tuple[str, str, str], LatencyTotal] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, service: str, tag: str, traffic: str, flush: TrafficFlush) -> None:
        for index in range(CODE_CLASSES):
            count = flush.codes[index]
            if count:
                key = (service, tag, traffic, index + 1)
                self.requests[key] = self.requests.get(key, 0) + count
        latency = flush.latency
        if latency is None:
            return
        total = self.latency.get((service, tag, traffic))
        if total is None:
            total = LatencyTotal(latency.bounds_ms, [0] * len(latency.counts))
            self.latency[(service, tag, traffic)] = total
        elif total.bounds_ms != latency.bounds_ms:
            return  # an Envoy with other bucket settings: its samples cannot be summed
        for index, count in enumerate(latency.counts):
            total.counts[index] += count
        total.sum_ms += latency.sum_ms

    def record(self, clusters: Mapping[str, ClusterFlush], attribute: Attribution) -> None:
        """Add one flush, each cluster under the tag it holds now."""
        with self._lock:
            for cluster, flush in clusters.items():
                owner = attribute(cluster)
                if owner is None:
                    continue
                service, tag = owner
                if flush.real.requests or flush.real.latency is not None:
                    self.add(service, tag, REAL, flush.real)
                if flush.shadow.requests or flush.shadow.latency is not None:
                    self.add(service, tag, SHADOW, flush.shadow)

    def snapshot(
        self,
    ) -> tuple[dict[tuple[str, str, str, int], int], dict[tuple[str, str, str], LatencyTotal]]:
        """Copies of both tables, consistent with each other."""
        with self._lock:
            latency = {
                key: LatencyTotal(total.bounds_ms, list(total.counts), total.sum_ms)
                for key, total in self.latency.items()
            }
            return dict(self.requests), latency


@dataclass
class TrafficBook:
    """The sink's recorder: each flush into the windows and into the totals by tag."""

    windows: TrafficWindows
    attribute: Attribution
    totals: TagTotals = field(default_factory=TagTotals)

    def record(self, envoy: str, at: float, clusters: Mapping[str, ClusterFlush]) -> None:
        self.windows.record(envoy, at, clusters)
        self.totals.record(clusters, self.attribute)

    def stream_started(self, envoy: str, at: float) -> None:
        self.windows.stream_started(envoy, at)

    def stream_ended(self, envoy: str, at: float) -> None:
        self.windows.stream_ended(envoy, at)
