"""Fixtures that run the real thing: `xdsctl serve` and `xdsctl` as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from xds_server.testing import wait_for_readyz
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc

_SCRIPT = shutil.which("xdsctl", path=str(Path(sys.executable).parent)) or shutil.which("xdsctl")
XDSCTL = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "xds_server.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def yaml(self) -> Any:
        return yaml.safe_load(self.stdout)

    def json(self) -> Any:
        return json.loads(self.stdout)


class ServerProcess:
    """One `xdsctl serve` on a free loopback port and a state file."""

    def __init__(
        self,
        state: Path,
        extra_args: tuple[str, ...] = (),
        store_url: str | None = None,
        log: Path | None = None,
    ) -> None:
        self.state = state
        # A postgresql:// URL replaces the state file (the log still goes beside it).
        self.store_args = ("--store", store_url) if store_url else ("--state", str(state))
        self.address = f"127.0.0.1:{free_port()}"
        self.xds_address = f"127.0.0.1:{free_port()}"
        self.metrics_address = f"127.0.0.1:{free_port()}"
        self.extra_args = extra_args
        self.process: subprocess.Popen[str] | None = None
        self.log = log or state.with_suffix(".log")
        # An admin token, once a test made one: sent by xdsctl() and snapshot().
        self.token: str | None = None

    def start(self) -> ServerProcess:
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [
                    *XDSCTL,
                    "serve",
                    "--api-listen",
                    self.address,
                    *self.store_args,
                    "--xds-listen",
                    self.xds_address,
                    "--metrics-listen",
                    self.metrics_address,
                    # Debug: each xDS response and ACK in the log, for diagnosis.
                    "--log-level",
                    "debug",
                    *self.extra_args,
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 20.0) -> None:
        assert self.process is not None
        wait_for_readyz(self.process, self.metrics_address, self.log, timeout)

    def signal(self, signum: int) -> int:
        """Send ``signum`` and wait for the process to end; returns its exit code."""
        assert self.process is not None
        self.process.send_signal(signum)
        return self.process.wait(timeout=15)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGKILL)

    def restart(self) -> ServerProcess:
        """Stop gracefully (SIGTERM) and start again on the same state."""
        assert self.signal(signal.SIGTERM) == 0, self.log.read_text()[-2000:]
        return self.start()

    def http(self, path: str) -> tuple[int, str]:
        """GET ``path`` on the metrics port: the status and the body."""
        url = f"http://{self.metrics_address}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of /metrics (None when absent)."""
        for family in text_string_to_metric_families(self.http("/metrics")[1]):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return sample.value
        return None

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The server's structured log lines (JSON) of one event."""
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{") and f'"event": "{event}"' in line:
                found.append(json.loads(line))
        return found

    def xdsctl(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        """Run the real CLI against this server."""
        token = {"XDSCTL_TOKEN": self.token} if self.token else {}
        return run_xdsctl(*args, env={"XDSCTL_SERVER": self.address, **token, **(env or {})})

    def snapshot(self) -> dict[str, Any]:
        """Everything the API can show, to prove a refused command changed nothing."""
        with grpc.insecure_channel(self.address) as channel:
            stub = operator_pb2_grpc.OperatorStub(channel)
            auth = {"metadata": [("authorization", f"Bearer {self.token}")]} if self.token else {}
            services = stub.ListServices(pb.ListServicesRequest(), timeout=5, **auth).services
            deployments = stub.ListDeployments(pb.ListDeploymentsRequest(), timeout=5, **auth)
            state: dict[str, Any] = {
                "services": [str(s) for s in services],
                "deployments": str(deployments),
            }
            for service in services:
                request = pb.GetTrafficRequest(service=service.name)
                state[f"traffic/{service.name}"] = str(stub.GetTraffic(request, timeout=5, **auth))
                history = pb.ListHistoryRequest(service=service.name)
                state[f"history/{service.name}"] = str(stub.ListHistory(history, timeout=5, **auth))
            return state


def run_xdsctl(*args: str, env: dict[str, str] | None = None) -> CliResult:
    completed = subprocess.run(
        [*XDSCTL, *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        timeout=60,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


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
        "test_subscription",
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
        "test_nack_and_hostile_clients",
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
    """A Stack (tests/stack.py) for one test, once in SotW and once in delta mode."""
    from tests.stack import Stack  # tests.stack imports this module

    built = Stack(workdir=tmp_path, delta=request.param == "delta")
    try:
        yield built
    finally:
        built.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """One throwaway PostgreSQL cluster for the session (tests/pg.py)."""
    from tests.pg import PostgresCluster, require_postgres

    cluster = PostgresCluster(require_postgres())
    try:
        yield cluster
    finally:
        cluster.close()
