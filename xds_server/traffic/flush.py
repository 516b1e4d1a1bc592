"""One stats flush of Envoy's MetricsService sink, decoded into per-cluster traffic deltas.

Pure: metric families in, values out. It expects the sink as the control plane
configures it (``report_counters_as_deltas``, ``emit_tags_as_labels``,
``histogram_emit_mode: HISTOGRAM``), where Envoy 1.40 sends each stat as its own
family of one metric, named after tag extraction and labelled with the tags:

- ``cluster.external.upstream_rq_xx`` and ``cluster.internal.upstream_rq_xx``
  (COUNTER, labels ``envoy.cluster_name`` and ``envoy.response_code_class``):
  requests completed in the interval, by class; ``external`` is real traffic,
  ``internal`` the shadows of ``request_mirror_policies``.
- ``cluster.external.upstream_rq_time`` and ``cluster.internal.upstream_rq_time``
  (HISTOGRAM, label ``envoy.cluster_name``): the interval's upstream latency in ms,
  buckets cumulative, no ``+Inf`` bucket (the overflow is ``sample_count`` minus the
  last bucket).

A name repeats across families (one family per cluster and code class), so each
family is read on its own by name, type and labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xds_server.envoy_metrics import prometheus_metrics_pb2 as prom

CODE_CLASSES = 5  # 1xx..5xx: index 0 is 1xx

_CLUSTER = "envoy.cluster_name"
_CODE_CLASS = "envoy.response_code_class"

# family name → (is shadow traffic, is the latency histogram)
_WANTED: dict[str, tuple[bool, bool]] = {
    "cluster.external.upstream_rq_xx": (False, False),
    "cluster.internal.upstream_rq_xx": (True, False),
    "cluster.external.upstream_rq_time": (False, True),
    "cluster.internal.upstream_rq_time": (True, True),
}
_COUNTER = prom.COUNTER
_HISTOGRAM = prom.HISTOGRAM
_CLASS_INDEX = {str(code_class): code_class - 1 for code_class in range(1, CODE_CLASSES + 1)}
NO_CODES = (0,) * CODE_CLASSES


@dataclass(frozen=True, slots=True)
class Latency:
    """One interval's latency histogram: per-bucket (not cumulative) sample counts.

    ``counts[i]`` counts samples at most ``bounds_ms[i]`` and above the bound before it
    (0 for the first); ``counts[-1]`` is the overflow above the last bound, so there is
    one count more than bounds.
    """

    bounds_ms: tuple[float, ...]
    counts: tuple[int, ...]
    sum_ms: float = 0.0  # of every sample: Prometheus' _sum (Envoy's sample_sum)

    @property
    def samples(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True, slots=True)
class TrafficFlush:
    """One kind of traffic (real or shadow) to one cluster in one interval; ``codes`` is
    :data:`NO_CODES` itself when the kind had no request."""

    codes: tuple[int, ...] = NO_CODES  # requests by response class, 1xx..5xx
    latency: Latency | None = None  # None: no sample in the interval

    @property
    def requests(self) -> int:
        return sum(self.codes)


EMPTY_TRAFFIC = TrafficFlush()


@dataclass(frozen=True, slots=True)
class ClusterFlush:
    """One Envoy cluster's deltas in one flush: real traffic and mirrored shadows."""

    real: TrafficFlush = EMPTY_TRAFFIC
    shadow: TrafficFlush = EMPTY_TRAFFIC


class _Parts:
    """One cluster's values while a flush is read."""

    __slots__ = ("codes", "latency")

    def __init__(self) -> None:
        self.codes = ([0] * CODE_CLASSES, [0] * CODE_CLASSES)  # real, shadow
        self.latency: list[Latency | None] = [None, None]  # real, shadow

    def flush(self) -> ClusterFlush:
        real, shadow = self.codes
        return ClusterFlush(
            real=TrafficFlush(_codes(real), self.latency[0]),
            shadow=TrafficFlush(_codes(shadow), self.latency[1]),
        )


def _codes(counts: list[int]) -> tuple[int, ...]:
    # The shared empty tuple lets a reader skip an idle kind by identity (most clusters
    # carry only real or only shadow traffic).
    return tuple(counts) if any(counts) else NO_CODES


def read_flush(families: Iterable[prom.MetricFamily]) -> dict[str, ClusterFlush]:
    """Each Envoy cluster named in ``families`` (the ``envoy_metrics`` of one
    StreamMetricsMessage) → its deltas. Families of other stats are skipped by name
    before their metrics are touched; SUMMARY and other types are ignored; a label or
    value that does not fit is skipped, never raised."""
    found: dict[str, _Parts] = {}
    wanted = _WANTED
    for family in families:
        role = wanted.get(family.name)
        if role is None:
            continue
        shadow, is_latency = role
        kind = family.type
        if is_latency:
            if kind != _HISTOGRAM:
                continue
            for metric in family.metric:
                cluster = _label(metric, _CLUSTER)
                if cluster is None:
                    continue
                parts = found.get(cluster) or found.setdefault(cluster, _Parts())
                parts.latency[shadow] = _latency(metric.histogram)
        elif kind == _COUNTER:
            for metric in family.metric:
                cluster = code_class = None
                for label in metric.label:
                    if label.name == _CLUSTER:
                        cluster = label.value
                    elif label.name == _CODE_CLASS:
                        code_class = label.value
                index = _CLASS_INDEX.get(code_class) if code_class is not None else None
                if cluster is None or index is None:
                    continue
                # A zero delta still names the cluster: this Envoy reports it, idle.
                parts = found.get(cluster) or found.setdefault(cluster, _Parts())
                value = metric.counter.value
                # NaN and negative deltas are not counts Envoy sends: `not > 0` drops both.
                if value > 0:
                    parts.codes[shadow][index] += int(value)
    return {cluster: parts.flush() for cluster, parts in found.items()}


def _label(metric: prom.Metric, name: str) -> str | None:
    for label in metric.label:
        if label.name == name:
            return label.value
    return None


def _latency(histogram: prom.Histogram) -> Latency | None:
    """Cumulative buckets → per-bucket counts, plus the overflow. None when the interval
    has no sample or the buckets do not ascend (not a histogram Envoy makes)."""
    total = histogram.sample_count
    if total == 0:
        return None
    bounds = []
    counts = []
    below = 0
    previous_bound = float("-inf")
    for bucket in histogram.bucket:
        bound = bucket.upper_bound
        cumulative = bucket.cumulative_count
        if not bound > previous_bound or cumulative < below:
            return None
        bounds.append(bound)
        counts.append(cumulative - below)
        previous_bound = bound
        below = cumulative
    if total < below:
        return None
    counts.append(total - below)
    return Latency(tuple(bounds), tuple(counts), histogram.sample_sum)
