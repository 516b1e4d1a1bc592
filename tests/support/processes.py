"""`xdsctl serve` and `xdsctl` as subprocesses, the way users run them."""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
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
            hooks = stub.ListHooks(pb.ListHooksRequest(), timeout=5, **auth)
            state: dict[str, Any] = {
                "services": [str(s) for s in services],
                "deployments": str(deployments),
                "hooks": str(hooks),
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
