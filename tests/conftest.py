"""Fixtures that run the real thing, and the marks that say what each test needs.
Shared helpers live in tests/support/."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server on an empty state file."""
    process = ServerProcess(tmp_path / "state.db").start()
    yield process
    process.stop()


# The pure layers' tests (model, translate, the xDS cache, planner and protocol rules
# in-process, the store's guards on local files): `pytest -m unit`, under a minute.
# They start no process: the guard below fails one that tries.
UNIT_MODULES = frozenset(
    {
        "test_ads_protocol",
        "test_cache",
        "test_errors",
        "test_events",
        "test_fleet_board",
        "test_follower",
        "test_fuzz_operator_api",
        "test_fuzz_xds",
        "test_ids",
        "test_inbox",
        "test_incremental",
        "test_invariants",
        "test_names",
        "test_operations",
        "test_planner",
        "test_state_document",
        "test_store_guards",
        "test_rollout_model",
        "test_traffic_book",
        "test_subscription",
        "test_suite_layout",
        "test_traffic_windows",
        "test_translate_golden",
        "test_wait_for_sync",
    }
)
# Modules whose tests start a real Envoy (a test elsewhere says so with its own mark).
ENVOY_MODULES = frozenset(
    {
        "test_benchmarks_smoke",
        "test_bootstrap_and_packaging",
        "test_envoy_e2e",
        "test_fleet_status",
        "test_ha",
        "test_metrics_sink_envoy",
        "test_nack_and_hostile_clients",
        "test_rollout_envoy",
        "test_routing_envoy",
        "test_traffic_metrics_envoy",
        "test_xds_limits",
        "test_xds_mtls",
        "test_zero_downtime",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by what it needs: `unit`, `envoy`, `postgres` (select with -m)."""
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]  # type: ignore[attr-defined]
        params = getattr(item, "callspec", None)
        on_postgres = "postgres" in item.fixturenames or (
            params is not None and "postgresql" in params.params.values()
        )
        if on_postgres:
            item.add_marker(pytest.mark.postgres)
        if "stack" in item.fixturenames or module in ENVOY_MODULES:
            item.add_marker(pytest.mark.envoy)
        if module in UNIT_MODULES and not on_postgres:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test marked `unit` that starts a process is mislabelled: fail it, loudly."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"a unit test starts no process (tried {args[1:2]})")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        help="rewrite golden files from the code's output and delete orphans",
    )


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


@pytest.fixture(params=["sotw", "delta"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A Stack (tests/support/stack.py) for one test, once in SotW and once in delta mode."""
    from tests.support.stack import Stack

    built = Stack(workdir=tmp_path, delta=request.param == "delta")
    try:
        yield built
    finally:
        built.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One throwaway PostgreSQL cluster for the session (tests/support/pg.py)."""
    from tests.support.pg import PostgresCluster, require_postgres

    cluster = PostgresCluster(require_postgres())
    try:
        yield cluster
    finally:
        cluster.close()
