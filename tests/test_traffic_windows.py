"""The stats-sink decoder on real Envoy 1.40 flushes (tests/fixtures/metrics, captured
with emit_tags_as_labels, report_counters_as_deltas and histogram_emit_mode HISTOGRAM)
and on synthetic messages, and the sliding windows built from them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from xds_server.envoy_metrics import metrics_service_pb2 as ms
from xds_server.envoy_metrics import prometheus_metrics_pb2 as prom
from xds_server.traffic.flush import NO_CODES, ClusterFlush, Latency, TrafficFlush, read_flush
from xds_server.traffic.windows import TrafficWindows

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "metrics"
BOUNDS = (0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0)
BOUNDS += (10000.0, 30000.0, 60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0)


def message(name: str) -> ms.StreamMetricsMessage:
    return ms.StreamMetricsMessage.FromString((FIXTURES / name).read_bytes())


def counter(name: str, cluster: str, code_class: str, value: float) -> prom.MetricFamily:
    family = prom.MetricFamily(name=name, type=prom.COUNTER)
    metric = family.metric.add(counter=prom.Counter(value=value), timestamp_ms=1000)
    metric.label.add(name="envoy.response_code_class", value=code_class)
    metric.label.add(name="envoy.cluster_name", value=cluster)
    return family


def histogram(
    name: str, cluster: str, cumulative: list[tuple[float, int]], total: int
) -> prom.MetricFamily:
    family = prom.MetricFamily(name=name, type=prom.HISTOGRAM)
    metric = family.metric.add()
    metric.label.add(name="envoy.cluster_name", value=cluster)
    metric.histogram.sample_count = total
    for bound, count in cumulative:
        metric.histogram.bucket.add(upper_bound=bound, cumulative_count=count)
    return family


def real(codes: tuple[int, ...], latency: Latency | None = None) -> ClusterFlush:
    return ClusterFlush(real=TrafficFlush(codes, latency))


def test_a_real_flush_gives_real_and_shadow_traffic_per_cluster() -> None:
    # shop_d1 took 17 2xx and 5 5xx; its route mirrors every request to shop_d2.
    flush = read_flush(message("flush_two_clusters.pb").envoy_metrics)
    assert set(flush) == {"shop_d1", "shop_d2"}
    primary, mirror = flush["shop_d1"], flush["shop_d2"]
    assert primary.real.codes == (0, 17, 0, 0, 5)
    assert primary.shadow.codes is NO_CODES
    assert mirror.shadow.codes == (0, 17, 0, 0, 5)
    assert mirror.real.codes is NO_CODES and mirror.real.latency is None
    latency = primary.real.latency
    assert latency is not None and latency.bounds_ms == BOUNDS
    assert len(latency.counts) == len(BOUNDS) + 1
    assert latency.samples == 22 and latency.counts[BOUNDS.index(50.0)] == 22
    assert mirror.shadow.latency == latency


def test_batch_parts_of_one_flush_add_up() -> None:
    parts = [message(f"flush_batched_part{i}.pb") for i in (1, 2, 3)]
    stamps = {m.timestamp_ms for p in parts for f in p.envoy_metrics for m in f.metric}
    assert len(stamps) == 1
    flushes = [read_flush(part.envoy_metrics) for part in parts]
    # shop_d1's 4xx came in the first part, its 5xx in the second, its latency in the last.
    assert flushes[0]["shop_d1"].real.codes == (0, 0, 0, 3, 0)
    assert flushes[1]["shop_d1"].real.codes == (0, 0, 0, 0, 4)
    assert flushes[2]["shop_d1"].real.latency is not None
    windows = TrafficWindows()
    at = next(iter(stamps)) / 1000
    for flush in flushes:
        windows.record("envoy-1", at, flush)
    summary = windows.summary("shop_d1", 5, at + 1.2)
    assert summary.real.codes == (0, 0, 0, 3, 4)
    assert summary.real.latency_samples == 8
    assert summary.flushes_received == summary.flushes_expected == 1
    assert summary.missing_intervals == 0


def test_families_are_told_apart_by_type_and_name() -> None:
    summary_family = prom.MetricFamily(name="cluster.external.upstream_rq_time", type=prom.SUMMARY)
    summary_family.metric.add().label.add(name="envoy.cluster_name", value="a_1")
    flush = read_flush(
        [
            summary_family,
            counter("cluster.external.upstream_rq_xx", "a_1", "2", 7),
            counter("cluster.internal.upstream_rq_xx", "a_1", "5", 2),
            counter("cluster.upstream_rq_xx", "a_1", "2", 9),  # real and shadow together
            counter("cluster.external.upstream_rq_xx", "a_1", "9", 1),  # no such class
            counter("cluster.external.upstream_rq_xx", "b_1", "2", 0),  # idle, still named
            histogram("cluster.external.upstream_rq_time", "a_1", [(1.0, 2), (10.0, 5)], total=6),
        ]
    )
    assert flush["a_1"].real == TrafficFlush((0, 7, 0, 0, 0), Latency((1.0, 10.0), (2, 3, 1)))
    assert flush["a_1"].shadow.codes == (0, 0, 0, 0, 2)
    assert flush["b_1"] == ClusterFlush()


def test_a_histogram_that_is_not_one_is_skipped() -> None:
    falling = histogram("cluster.external.upstream_rq_time", "a_1", [(1.0, 5), (10.0, 2)], 5)
    unordered = histogram("cluster.internal.upstream_rq_time", "a_1", [(10.0, 1), (1.0, 2)], 2)
    flush = read_flush([falling, unordered])
    assert flush["a_1"] == ClusterFlush()


def test_decoding_a_realistic_flush_is_fast() -> None:
    data = (FIXTURES / "flush_ten_clusters.pb").read_bytes()
    assert len(read_flush(ms.StreamMetricsMessage.FromString(data).envoy_metrics)) == 10
    rounds = 200
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            read_flush(ms.StreamMetricsMessage.FromString(data).envoy_metrics)
        best = min(best, (time.perf_counter() - started) / rounds)
    # 240-340 µs measured for this 57 KB, 500-family flush; the bound leaves room for CI.
    assert best < 0.002


def test_rates_error_rate_and_percentiles() -> None:
    windows = TrafficWindows()
    latency = Latency((10.0, 20.0), (50, 50, 0))
    for second in range(10):
        windows.record("envoy-1", 100 + second + 0.3, {"a_1": real((0, 9, 0, 0, 1), latency)})
        windows.record("envoy-2", 100 + second + 0.7, {"a_1": real((0, 10, 0, 0, 0), latency)})
    summary = windows.summary("a_1", 10, now=110.1)
    assert summary.real.requests == 200 and summary.real.requests_per_second == 20
    assert summary.real.error_rate == pytest.approx(10 / 200)
    assert summary.real.p50_ms == pytest.approx(10.0)
    assert summary.real.p90_ms == pytest.approx(18.0)
    assert summary.real.p99_ms == pytest.approx(19.8)
    assert summary.shadow.requests == 0 and summary.shadow.error_rate is None
    assert summary.shadow.p50_ms is None
    assert summary.envoys_reporting == 2 and summary.intervals == 10
    assert summary.flushes_expected == summary.flushes_received == 20
    assert summary.complete
    # A shorter window sees only its own seconds.
    assert windows.summary("a_1", 3, now=110.1).real.requests == 60
    assert windows.summary("unknown", 10, now=110.1).real.requests == 0


def test_a_percentile_in_the_overflow_is_the_last_bound() -> None:
    windows = TrafficWindows()
    windows.record("envoy-1", 10.5, {"a_1": real((0, 10, 0, 0, 0), Latency((5.0,), (1, 9)))})
    summary = windows.summary("a_1", 1, now=11.2)
    assert summary.real.p50_ms == 5.0 and summary.real.p99_ms == 5.0


def test_histograms_with_different_bounds_merge() -> None:
    windows = TrafficWindows()
    windows.record("envoy-1", 10.5, {"a_1": real((0, 10, 0, 0, 0), Latency((10.0,), (10, 0)))})
    windows.record(
        "envoy-2", 10.6, {"a_1": real((0, 10, 0, 0, 0), Latency((5.0, 10.0), (0, 10, 0)))}
    )
    summary = windows.summary("a_1", 1, now=11.2)
    assert summary.real.latency_samples == 20
    # Half the samples spread over (0, 10], half over (5, 10]: the median is at 6.67.
    assert summary.real.p50_ms == pytest.approx(20 / 3)


def test_gaps_are_missing_data_not_zero_traffic() -> None:
    windows = TrafficWindows()
    flush = {"a_1": real((0, 10, 0, 0, 0))}
    windows.stream_started("envoy-1", 100.0)
    for second in (*range(0, 5), *range(8, 10)):  # flushes at 105..107 were lost
        windows.record("envoy-1", 100 + second + 0.2, flush)
    windows.record("envoy-2", 100.5, flush)
    for second in range(1, 10):
        windows.record("envoy-2", 100 + second + 0.5, flush)
    summary = windows.summary("a_1", 10, now=110.3)
    assert summary.missing_intervals == 3
    assert summary.flushes_received == 17 and summary.flushes_expected == 20
    assert not summary.complete
    assert summary.real.requests == 170  # what came, nothing invented
    # envoy-2's stream ends and it does not come back: each second it is not there counts.
    windows.stream_ended("envoy-2", 109.8)
    later = windows.summary("a_1", 10, now=113.3)
    assert later.missing_intervals == 3 + 3 + 3  # envoy-1 stopped too (last at 109.2)
    assert later.envoys_reporting == 2


def test_a_late_flush_within_the_tolerance_is_not_missing() -> None:
    windows = TrafficWindows()
    for at in (100.0, 101.0, 102.4, 103.0, 104.0):  # 1.4 intervals late: still in time
        windows.record("envoy-1", at, {"a_1": real((0, 1, 0, 0, 0))})
    summary = windows.summary("a_1", 5, now=105.2)
    assert summary.missing_intervals == 0 and summary.flushes_received == 5


def test_a_window_before_the_windows_started_is_not_covered() -> None:
    windows = TrafficWindows()
    windows.record("envoy-1", 100.2, {"a_1": real((0, 1, 0, 0, 0))})
    windows.record("envoy-1", 101.2, {"a_1": real((0, 1, 0, 0, 0))})
    summary = windows.summary("a_1", 60, now=102.5)
    assert summary.intervals == 2 and summary.missing_intervals == 0
    assert summary.real.requests_per_second == 1.0
    assert not summary.complete


def test_clusters_and_envoys_beyond_the_horizon_are_dropped() -> None:
    windows = TrafficWindows(horizon_seconds=30)
    for second in range(1000):
        windows.record(f"envoy-{second % 7}", float(second), {f"c_{second}": real((0, 1, 0, 0, 0))})
    assert len(windows) <= 31
    windows.record("envoy-x", 2000.0, {"a_1": real((0, 1, 0, 0, 0))})
    assert len(windows) == 1
    summary = windows.summary("a_1", 30, now=2001.0)
    # The old Envoys are gone, not missing forever.
    assert summary.envoys_reporting == 1 and summary.missing_intervals == 0


def test_a_ring_bucket_is_reused_not_summed_with_an_older_second() -> None:
    windows = TrafficWindows(horizon_seconds=10)
    for second in range(25):
        windows.record("envoy-1", second + 0.5, {"a_1": real((0, 1, 0, 0, 0))})
    summary = windows.summary("a_1", 60, now=25.1)
    assert summary.window_seconds == 10 and summary.real.requests == 10
    windows.record("envoy-1", 3.5, {"a_1": real((0, 100, 0, 0, 0))})  # far too old
    assert windows.summary("a_1", 60, now=25.1).real.requests == 10


def test_record_is_cheap() -> None:
    windows = TrafficWindows()
    latency = Latency(BOUNDS, (0, 0, 0, 0, 5, 80, 10, 5, *(0,) * 12))
    flush = {f"svc{i}_d{i}": real((0, 90, 0, 0, 10), latency) for i in range(10)}
    envoys = [f"envoy-{i}" for i in range(1000)]
    started = time.perf_counter()
    for second in range(3):
        for envoy in envoys:
            windows.record(envoy, 1000 + second + 0.01, flush)
    per_second = (time.perf_counter() - started) / 3
    # 1,000 Envoys x 10 clusters each second: ~20 ms measured; 10 % of a core is 100 ms.
    assert per_second < 0.1
