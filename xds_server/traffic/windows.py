"""Sliding windows of live traffic per Envoy cluster, summed over every Envoy.

Pure: flushes in (:func:`xds_server.traffic.flush.read_flush`), summaries out; the
caller supplies every time. Each cluster keeps a ring of 1-second buckets as long as
the horizon. Each Envoy keeps the times of its flushes and the gaps between them,
within the horizon, so a summary can say how much of the window it actually saw:
Envoy does not resend the deltas of flushes lost while its stream was down, so a
missing flush is missing data, never zero traffic.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from operator import add

from xds_server.traffic.flush import CODE_CLASSES, NO_CODES, ClusterFlush, Latency

# A flush is due every interval; one later than this many intervals after the previous
# one means the flushes between them were lost (Envoy's flushes are 1.000 s apart).
_LATE = 1.5
# Messages of one Envoy this close (in intervals) are parts of one flush (`batch_size`
# splits a flush into messages with the same timestamp).
_SAME_FLUSH = 0.5


@dataclass(frozen=True, slots=True)
class TrafficSummary:
    """One kind of traffic (real or shadow) to one cluster over a window.

    ``requests_per_second`` divides what was received by the window's covered
    intervals: with missing flushes it under-counts (see :class:`WindowSummary`).
    A percentile in the overflow bucket is given as the last bound (a lower bound).
    """

    codes: tuple[int, ...]  # requests by response class, 1xx..5xx
    requests: int
    requests_per_second: float
    error_rate: float | None  # the 5xx share; None without requests
    latency_samples: int
    p50_ms: float | None  # None without latency samples
    p90_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """One cluster over the last ``window_seconds``, and how complete that data is.

    ``intervals``: 1-second intervals of the window these windows were running for.
    ``flushes_expected``/``flushes_received``: flushes of the Envoys that report this
    cluster (mentioned it within the horizon), counted from when each was first seen.
    ``missing_intervals``: Envoy-intervals with no flush (a late flush, a stream down
    and back, a stream that ended and has not come back).
    """

    cluster: str
    window_seconds: float
    real: TrafficSummary
    shadow: TrafficSummary
    envoys_reporting: int  # distinct Envoys whose flushes in the window named the cluster
    intervals: int
    flushes_expected: int
    flushes_received: int
    missing_intervals: int

    @property
    def complete(self) -> bool:
        """Every expected flush came and the whole window was observed."""
        return self.missing_intervals == 0 and self.intervals >= _window_intervals(
            self.window_seconds
        )


class _Envoy:
    __slots__ = ("flushes", "gaps", "last", "streams")

    def __init__(self) -> None:
        self.flushes: list[float] = []  # ascending, one per flush (not per message)
        self.gaps: list[tuple[float, float]] = []  # (point, next flush) further than _LATE
        self.last: float | None = None  # the last flush, or a stream start before any
        self.streams = 0


class _Histogram:
    """Latency counts summed over a bucket, for one layout of histogram buckets."""

    __slots__ = ("bounds", "counts")

    def __init__(self, bounds: tuple[float, ...], counts: list[int]) -> None:
        self.bounds = bounds
        self.counts = counts


class _Bucket:
    """One second of one cluster: requests by class 1xx..5xx and latency, per kind.
    A latency list holds one histogram unless the Envoys' bucket settings differ."""

    __slots__ = ("real", "real_latency", "second", "shadow", "shadow_latency")

    def __init__(self, second: int) -> None:
        self.second = second
        self.real = [0] * CODE_CLASSES
        self.shadow = [0] * CODE_CLASSES
        self.real_latency: list[_Histogram] = []
        self.shadow_latency: list[_Histogram] = []


class _Cluster:
    __slots__ = ("envoys", "last", "ring")

    def __init__(self, size: int) -> None:
        self.ring: list[_Bucket | None] = [None] * size
        self.envoys: dict[str, float] = {}  # Envoy → its last flush naming this cluster
        self.last = 0.0


class TrafficWindows:
    """Per-cluster traffic in 1-second buckets over ``horizon_seconds``.

    Memory is proportional to clusters x horizon seconds (a bucket with traffic takes
    under 1 KB), plus per Envoy its flush times and gaps within the horizon and one entry
    per cluster it reported within the horizon. A cluster, or an Envoy, not heard of for
    longer than the horizon is dropped.
    """

    def __init__(self, horizon_seconds: float = 300, flush_interval: float = 1.0) -> None:
        self._size = max(1, math.ceil(horizon_seconds))
        self._horizon = float(self._size)
        self._interval = flush_interval
        self._clusters: dict[str, _Cluster] = {}
        self._envoys: dict[str, _Envoy] = {}
        # One tuple per distinct bucket layout, shared by every bucket that uses it.
        self._bounds: dict[tuple[float, ...], tuple[float, ...]] = {}
        self._first: float | None = None
        self._pruned = -math.inf

    @property
    def horizon(self) -> float:
        """How far back a summary can look, in seconds."""
        return self._horizon

    def record(self, envoy: str, at: float, clusters: Mapping[str, ClusterFlush]) -> None:
        """One message of one Envoy's flush at ``at`` (seconds). A message within half an
        interval of that Envoy's last flush is another part of it: its values count,
        it is not another interval."""
        state = self._envoy(envoy, at)
        flushes = state.flushes
        if not flushes or at > flushes[-1] + _SAME_FLUSH * self._interval:
            last = state.last
            if last is not None and at - last > _LATE * self._interval:
                state.gaps.append((last, at))
            flushes.append(at)
            state.last = at
        second = int(at // 1)
        index = second % self._size
        for name, flush in clusters.items():
            cluster = self._clusters.get(name)
            if cluster is None:
                cluster = self._clusters[name] = _Cluster(self._size)
            cluster.envoys[envoy] = at
            if at > cluster.last:
                cluster.last = at
            ring = cluster.ring
            bucket = ring[index]
            if bucket is None or bucket.second < second:
                bucket = ring[index] = _Bucket(second)
            elif bucket.second != second:
                continue  # older than the horizon: its bucket holds a newer second now
            real, shadow = flush.real, flush.shadow
            if real.codes is not NO_CODES:
                bucket.real[:] = map(add, bucket.real, real.codes)
            if shadow.codes is not NO_CODES:
                bucket.shadow[:] = map(add, bucket.shadow, shadow.codes)
            if real.latency is not None:
                self._add_latency(bucket.real_latency, real.latency)
            if shadow.latency is not None:
                self._add_latency(bucket.shadow_latency, shadow.latency)
        if at >= self._pruned + 1:
            self._prune(at)

    def stream_started(self, envoy: str, at: float) -> None:
        """An Envoy opened a sink stream: from now on its flushes are expected."""
        self._envoy(envoy, at).streams += 1

    def stream_ended(self, envoy: str, at: float) -> None:
        """An Envoy's sink stream closed; its flushes count as missing until it is back."""
        state = self._envoys.get(envoy)
        if state is not None and state.streams > 0:
            state.streams -= 1

    def summary(self, cluster: str, window: float, now: float) -> WindowSummary:
        """``cluster`` over the last ``window`` seconds (at most the horizon) at ``now``."""
        window = min(window, self._horizon)
        count = _window_intervals(window)
        # The current second is still filling (each Envoy flushes at its own phase): the
        # window is the ``count`` whole seconds before it.
        end = int(now // 1)
        start = float(end - count)
        observed = 0 if self._first is None else end - int(self._first // 1)
        intervals = max(0, min(count, observed))
        real = [0] * CODE_CLASSES
        shadow = [0] * CODE_CLASSES
        real_latency: dict[tuple[float, ...], list[int]] = {}
        shadow_latency: dict[tuple[float, ...], list[int]] = {}
        expected = received = missing = reporting = 0
        state = self._clusters.get(cluster)
        if state is not None:
            for bucket in state.ring:
                if bucket is None or not start <= bucket.second < end:
                    continue
                real[:] = map(add, real, bucket.real)
                shadow[:] = map(add, shadow, bucket.shadow)
                _merge(real_latency, bucket.real_latency)
                _merge(shadow_latency, bucket.shadow_latency)
            horizon_start = now - self._horizon
            for name, last in state.envoys.items():
                envoy = self._envoys.get(name)
                if envoy is None or last < horizon_start:
                    continue
                if last >= start:
                    reporting += 1
                got = bisect_left(envoy.flushes, end) - bisect_left(envoy.flushes, start)
                lost = self._missing(envoy, start, end, now)
                received += got
                missing += lost
                expected += got + lost
        return WindowSummary(
            cluster=cluster,
            window_seconds=window,
            real=_traffic(real, real_latency, intervals),
            shadow=_traffic(shadow, shadow_latency, intervals),
            envoys_reporting=reporting,
            intervals=intervals,
            flushes_expected=expected,
            flushes_received=received,
            missing_intervals=missing,
        )

    def __len__(self) -> int:
        """The clusters kept."""
        return len(self._clusters)

    def _envoy(self, envoy: str, at: float) -> _Envoy:
        state = self._envoys.get(envoy)
        if state is None:
            state = self._envoys[envoy] = _Envoy()
            state.last = at
        if self._first is None or at < self._first:
            self._first = at
        return state

    def _add_latency(self, histograms: list[_Histogram], latency: Latency) -> None:
        bounds = latency.bounds_ms
        for histogram in histograms:
            if histogram.bounds is bounds or histogram.bounds == bounds:
                histogram.counts[:] = map(add, histogram.counts, latency.counts)
                return
        histograms.append(_Histogram(self._bounds.setdefault(bounds, bounds), list(latency.counts)))

    def _missing(self, envoy: _Envoy, start: float, end: float, now: float) -> int:
        """The Envoy's flushes due in [start, end) that did not come (by ``now``)."""
        lost = 0
        for since, until in reversed(envoy.gaps):
            if until < start:
                break
            lost += _due(since, until, start, end, self._interval)
        if envoy.last is not None:
            lost += _due(envoy.last, now, start, end, self._interval)
        return lost

    def _prune(self, now: float) -> None:
        self._pruned = now
        oldest = now - self._horizon
        for name in [n for n, c in self._clusters.items() if c.last < oldest]:
            del self._clusters[name]
        for cluster in self._clusters.values():
            for gone in [e for e, last in cluster.envoys.items() if last < oldest]:
                del cluster.envoys[gone]
        for name, envoy in list(self._envoys.items()):
            if envoy.last is not None and envoy.last < oldest and envoy.streams == 0:
                del self._envoys[name]
                continue
            del envoy.flushes[: bisect_left(envoy.flushes, oldest)]
            while envoy.gaps and envoy.gaps[0][1] < oldest:
                envoy.gaps.pop(0)
        if self._first is not None and self._first < oldest:
            self._first = oldest


def _window_intervals(window: float) -> int:
    return max(1, round(window))


def _due(since: float, until: float, start: float, end: float, interval: float) -> int:
    """Flushes due after ``since`` that had not come by ``until`` (half an interval
    late), counting those due in [start, end)."""
    due = int((until - since) / interval - 0.5)
    first = max(1, math.ceil((start - since) / interval))
    last = min(due, math.ceil((end - since) / interval) - 1)
    return max(0, last - first + 1)


def _merge(into: dict[tuple[float, ...], list[int]], histograms: list[_Histogram]) -> None:
    for histogram in histograms:
        total = into.get(histogram.bounds)
        if total is None:
            into[histogram.bounds] = list(histogram.counts)
        else:
            total[:] = map(add, total, histogram.counts)


def _traffic(
    codes: list[int], latency: dict[tuple[float, ...], list[int]], intervals: int
) -> TrafficSummary:
    requests = sum(codes)
    samples = sum(sum(counts) for counts in latency.values())
    p50, p90, p99 = (_percentile(latency, samples, q) for q in (0.5, 0.9, 0.99))
    return TrafficSummary(
        codes=tuple(codes),
        requests=requests,
        requests_per_second=requests / intervals if intervals else 0.0,
        error_rate=codes[4] / requests if requests else None,
        latency_samples=samples,
        p50_ms=p50,
        p90_ms=p90,
        p99_ms=p99,
    )


def _percentile(
    latency: dict[tuple[float, ...], list[int]], samples: int, quantile: float
) -> float | None:
    """The ``quantile`` of the merged histograms, samples spread evenly inside each
    bucket (from the bound below it, 0 for the first). Histograms with different bounds
    merge through their combined distribution."""
    if samples == 0:
        return None
    rank = quantile * samples
    # Breakpoints of the piecewise-linear distribution, and the overflow's lower bound.
    points = sorted({0.0, *(bound for bounds in latency for bound in bounds)})
    overflow_from = 0.0
    below = 0.0
    previous = 0.0
    for point in points[1:]:
        mass = 0.0
        for bounds, counts in latency.items():
            lower = 0.0
            for bound, count in zip(bounds, counts, strict=False):
                if count and bound > previous and lower < point:
                    overlap = min(bound, point) - max(lower, previous)
                    mass += count * overlap / (bound - lower)
                lower = bound
        if below + mass >= rank and mass > 0:
            return previous + (point - previous) * (rank - below) / mass
        below += mass
        previous = point
    for bounds, counts in latency.items():
        if counts[-1] and bounds:
            overflow_from = max(overflow_from, bounds[-1])
    return overflow_from
