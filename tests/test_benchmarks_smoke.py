"""The benchmarks still run (tiny sizes). Timings are printed by bench/, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(script: str, *args: str, out: Path) -> object:
    finished = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    # The benchmark's own stderr names what failed (and, for world.py, the servers' and
    # Envoy's last log lines): without it a failure in CI says only "exit status 1".
    assert finished.returncode == 0, (
        f"{script} exited {finished.returncode}:\n{finished.stderr[-6000:]}"
    )
    return json.loads(out.read_text())


def test_fleet_benchmark_runs(tmp_path: Path) -> None:
    """The fleet simulator converges against both servers and reports every figure."""
    results = _run("fleet.py", "--clients", "10", "--changes", "2", out=tmp_path / "f.json")
    assert isinstance(results, dict)
    assert [(r["kind"], r["clients"], r["changes"]) for r in results["runs"]] == [
        ("raw", 10, 2),
        ("ours", 10, 2),
    ]
    for result in results["runs"]:
        assert {"last_p50_s", "last_p99_s", "rss_per_client_kib", "cpu_s_per_change"} <= set(result)
    [ratios] = results["ratios"]
    assert ratios["clients"] == 10 and ratios["rounds"] == 1
    assert {"p50", "p99", "memory_per_client", "cpu_per_change"} <= set(ratios)


@pytest.mark.postgres
def test_fleet_benchmark_runs_two_replicas(tmp_path: Path) -> None:
    """The replica comparison: one replica on SQLite, then two on a throwaway PostgreSQL."""
    from tests.support.pg import require_postgres

    require_postgres()
    results = _run(
        "fleet.py",
        "--clients",
        "10",
        "--changes",
        "2",
        "--kinds",
        "ours",
        "ha",
        out=tmp_path / "f.json",
    )
    assert isinstance(results, dict)
    assert [(r["kind"], r["clients"]) for r in results["runs"]] == [("ours", 10), ("ha", 10)]
    [ratios] = results["ratios"]
    assert ratios["of"] == "ha/ours" and ratios["p50"] is not None


def test_envoy_latency_benchmark_runs(tmp_path: Path) -> None:
    """The real-Envoy benchmark completes its changes and CLI runs."""
    result = _run("envoy_latency.py", "--changes", "3", "--gets", "2", out=tmp_path / "e.json")
    assert result["changes"] == 3
    assert {"change_to_envoy_p99_ms", "traffic_get_p50_ms"} <= set(result)


def test_dataplane_benchmark_runs(tmp_path: Path) -> None:
    """wrk through the static Envoy, ours, and ours with a slow mirror: every case answers."""
    result = _run(
        "dataplane.py",
        "--seconds",
        "1",
        "--rounds",
        "1",
        "--connections",
        "4",
        out=tmp_path / "d.json",
    )
    assert isinstance(result, dict)
    assert set(result["medians"]) == {"static", "ours", "ours+mirror"}
    for case, figures in result["medians"].items():
        assert figures["rps"] > 0, case
        # Every request got a 2xx: each case really routed to the upstream.
        assert figures["non_2xx"] == 0, case
    assert {"throughput_ours_over_static", "p99_mirror_over_plain"} <= set(result)


def test_auth_overhead_benchmark_runs(tmp_path: Path) -> None:
    """Open, token, TLS + token and mTLS servers each answer timed reads and writes."""
    result = _run(
        "auth_overhead.py",
        "--calls",
        "20",
        "--warmup",
        "5",
        "--writes",
        "5",
        "--rounds",
        "1",
        out=tmp_path / "a.json",
    )
    assert isinstance(result, dict)
    assert set(result["medians"]) == {"open", "token", "tls+token", "mtls"}
    for mode, figures in result["medians"].items():
        for kind in ("reads", "writes"):
            # Server CPU per call is left out: at 20 calls it is below /proc's resolution.
            timed = [figures[kind][key] for key in ("p50_us", "p99_us", "calls_per_s")]
            assert all(value > 0 for value in timed), (mode, kind, figures[kind])
        assert set(result["ratios_to_open"][mode]) == {"reads", "writes"}


def test_world_benchmark_runs(tmp_path: Path) -> None:
    """The size-of-the-world benchmark at toy sizes: every figure, ratios, sequential applies."""
    results = _run(
        "world.py",
        *("--sizes", "5", "10", "--changes", "3", "--applies", "2", "--churn", "5"),
        *("--sequential-applies", "6"),
        out=tmp_path / "w.json",
    )
    assert isinstance(results, dict)
    assert [s["services"] for s in results["sizes"]] == [5, 10]
    for size in results["sizes"]:
        assert {
            "server_cpu_ms_per_change",
            "envoy_cpu_ms_per_change",
            "set_traffic_p50_ms",
            "apply_new_service_p50_ms",
            "change_to_envoy_p50_ms",
            "route_table_bytes",
            "rss_mib_after_churn",
            "import_s",
        } <= set(size)
    assert set(results["ratios"]) == {"S=10"}
    assert results["sequential"]["applies"] == 6


@pytest.mark.postgres
def test_world_benchmark_runs_two_replicas(tmp_path: Path) -> None:
    """With --ha the other replica's cost per change is reported."""
    from tests.support.pg import require_postgres

    require_postgres()
    results = _run(
        "world.py",
        *("--ha", "--sizes", "5", "--changes", "2", "--applies", "1"),
        out=tmp_path / "w.json",
    )
    assert isinstance(results, dict)
    assert "other_replica_cpu_ms_per_change" in results["sizes"][0]


def test_metrics_ingest_benchmark_runs(tmp_path: Path) -> None:
    """Sink streams against `xdsctl serve`: every flush accepted, then changes with and
    without the load; every figure reported."""
    results = _run(
        "metrics_ingest.py",
        *("--envoys", "5", "--seconds", "2", "--fleet-clients", "5", "--changes", "2"),
        out=tmp_path / "m.json",
    )
    assert isinstance(results, dict)
    [ingest] = results["ingest"]
    assert {
        "envoys",
        "cpu_percent",
        "us_per_flush",
        "rss_mib_before",
        "rss_mib_after",
        "flushes_per_second",
    } <= set(ingest)
    assert ingest["envoys"] == 5 and ingest["flushes_per_second"] > 0
    # The server started every stream and folded every Envoy's flushes.
    assert ingest["streams_started"] == 5 and ingest["envoys_reporting"] == 5
    assert ingest["malformed_flushes"] == 0
    interference = results["interference"]
    assert (interference["clients"], interference["changes"]) == (5, 2)
    for mode in ("without", "with"):
        assert {"p50_s", "p99_s"} <= set(interference[mode])
    assert {"p50_ratio", "p99_ratio"} <= set(interference)


def test_rollout_abort_benchmark_runs(tmp_path: Path) -> None:
    """One rollout through a real Envoy, its canary failing mid-step: the abort is timed
    and the clients' errors in the window are counted."""
    results = _run("rollout_abort.py", "--runs", "1", "--interval", "1", out=tmp_path / "r.json")
    assert isinstance(results, dict)
    assert {
        "runs",
        "interval_s",
        "p50_s",
        "p90_s",
        "max_s",
        "target_s",
        "errors_total",
        "requests_in_window_total",
        "canary_share",
    } <= set(results)
    [run] = results["runs"]
    assert {
        "onset_to_abort_judged_s",
        "onset_to_status_aborted_s",
        "onset_to_weights_back_s",
        "errors",
        "requests_in_window",
        "requests_to_green",
    } <= set(run)
    assert results["interval_s"] == 1 and run["weights_after"] == {"blue": 100, "green": 0}
    # Every error the clients saw was one of green's answers.
    assert run["errors"] <= run["requests_to_green"] <= run["requests_in_window"]


def test_outbox_benchmark_runs(tmp_path: Path) -> None:
    """The outbox's cost per commit and per claim, at a tiny size: the backlog is built
    (every delivery left waiting) and no claim finds anything due once heads back off."""
    results = _run(
        "outbox.py",
        "--services",
        "20",
        "--changes",
        "10",
        "--backlog",
        "300",
        out=tmp_path / "o.json",
    )
    assert isinstance(results, dict)
    assert results["backlog"]["pending"] >= 300
    assert results["three_hooks"]["claimed"] > 0
    for phase in ("no_hook", "three_hooks", "three_hooks_backlog"):
        assert {"p50_ms", "p99_ms", "idle_claim_ms"} <= set(results[phase])
