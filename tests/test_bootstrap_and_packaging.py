"""Bootstraps, the demo and Docker Compose: what a new user runs first."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.processes import XDSCTL, free_port, run_xdsctl
from tests.support.stack import ENVOY, wait_until

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAPS = {
    "bootstrap-sotw.yaml": [],
    "bootstrap-delta.yaml": ["--delta"],
    "bootstrap-compose.yaml": [
        "--node-id",
        "envoy-compose",
        "--xds",
        "control-plane:18000",
        "--admin",
        "0.0.0.0:9901",
        # One Envoy: back within 2 s of `docker compose restart control-plane`.
        "--reconnect-max",
        "2s",
    ],
}


@pytest.mark.parametrize(("name", "args"), BOOTSTRAPS.items(), ids=list(BOOTSTRAPS))
def test_committed_bootstrap_is_the_commands_output(name: str, args: list[str]) -> None:
    """envoy/ holds exactly what `xdsctl bootstrap` prints (regenerate, don't edit)."""
    result = run_xdsctl("bootstrap", *args)
    assert result.returncode == 0, result.stderr
    command = " ".join(["xdsctl bootstrap", *args])
    assert (ROOT / "envoy" / name).read_text() == result.stdout, f"run: {command} > envoy/{name}"


@pytest.mark.parametrize("name", list(BOOTSTRAPS))
def test_envoy_accepts_the_bootstrap(name: str) -> None:
    """Real Envoy validates every committed bootstrap."""
    assert_envoy_accepts(ROOT / "envoy" / name)


def assert_envoy_accepts(config: Path) -> None:
    """Real Envoy's ``--mode validate`` passes on the bootstrap at ``config``."""
    assert ENVOY is not None
    result = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_bootstrap_for_several_replicas(tmp_path: Path) -> None:
    """Every replica in xds_cluster, a keepalive short enough to leave a hung one in ~3 s,
    and Envoy accepts it."""
    result = run_xdsctl("bootstrap", "--xds", "10.0.0.1:18000,xds-2.internal:18000")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    cluster, *sink_clusters = document["static_resources"]["clusters"]
    assert cluster["name"] == "xds_cluster"
    assert cluster["type"] == "STRICT_DNS"  # one replica is a host name
    endpoints = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert [e["endpoint"]["address"]["socket_address"] for e in endpoints] == [
        {"address": "10.0.0.1", "port_value": 18000},
        {"address": "xds-2.internal", "port_value": 18000},
    ]
    options = cluster["typed_extension_protocol_options"]
    http2 = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    keepalive = http2["explicit_http_config"]["http2_protocol_options"]["connection_keepalive"]
    assert keepalive == {"interval": "2s", "timeout": "1s"}
    # Stats go to every replica, one sink and one single-host cluster each.
    sink_hosts = [
        [e["endpoint"]["address"]["socket_address"]["address"] for e in lb["lb_endpoints"]]
        for c in sink_clusters
        for lb in c["load_assignment"]["endpoints"]
    ]
    assert sink_hosts == [["10.0.0.1"], ["xds-2.internal"]]
    sinks = [s["typed_config"]["grpc_service"]["envoy_grpc"] for s in document["stats_sinks"]]
    assert sinks == [{"cluster_name": c["name"]} for c in sink_clusters]
    assert document["stats_flush_interval"] == "1s"
    config = tmp_path / "envoy.yaml"
    config.write_text(result.stdout)
    assert_envoy_accepts(config)


def test_bootstrap_streams_stats_unless_told_not_to() -> None:
    """One replica: the sink shares xds_cluster; --no-metrics leaves it out entirely."""
    document = yaml.safe_load(run_xdsctl("bootstrap").stdout)
    [sink] = document["stats_sinks"]
    config = sink["typed_config"]
    assert config["grpc_service"] == {"envoy_grpc": {"cluster_name": "xds_cluster"}}
    assert (config["report_counters_as_deltas"], config["emit_tags_as_labels"]) == (True, True)
    assert config["histogram_emit_mode"] == "HISTOGRAM"
    plain = yaml.safe_load(run_xdsctl("bootstrap", "--no-metrics").stdout)
    assert "stats_sinks" not in plain and "stats_flush_interval" not in plain
    assert len(plain["static_resources"]["clusters"]) == 1


@pytest.mark.parametrize(("given", "seconds"), [("5s", 5), ("7", 7), ("2m", 120)])
def test_bootstrap_keepalive_takes_a_duration(given: str, seconds: int) -> None:
    document = run_xdsctl("bootstrap", "--keepalive-interval", given).stdout
    assert f"interval: {seconds}s" in document


def test_bootstrap_caps_the_reconnect_backoff_when_asked(tmp_path: Path) -> None:
    """Envoy's own ADS backoff by default; --reconnect-max caps it (and the first wait
    too when the cap is below it), and Envoy accepts the result."""
    plain = yaml.safe_load(run_xdsctl("bootstrap").stdout)
    [service] = plain["dynamic_resources"]["ads_config"]["grpc_services"]
    assert service == {"envoy_grpc": {"cluster_name": "xds_cluster"}}
    for given, base, cap in (
        ("2s", "0.5s", "2s"),
        ("200ms", "0.2s", "0.2s"),
        ("1m", "0.5s", "60s"),
    ):
        result = run_xdsctl("bootstrap", "--reconnect-max", given)
        assert result.returncode == 0, result.stderr
        document = yaml.safe_load(result.stdout)
        [service] = document["dynamic_resources"]["ads_config"]["grpc_services"]
        backoff = service["envoy_grpc"]["retry_policy"]["retry_back_off"]
        assert backoff == {"base_interval": base, "max_interval": cap}
    config = tmp_path / "envoy.yaml"
    config.write_text(result.stdout)
    assert_envoy_accepts(config)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reconnect-max", "50ms"], "--reconnect-max must be at least 0.1s"),
        (["--reconnect-max", "10m"], "'10m' must be above 0 and at most 5m"),
        (["--reconnect-max", "soon"], "'soon' is not a duration"),
        (["--keepalive-interval", "0"], "--keepalive-interval must be at least 1s"),
        (["--keepalive-interval", "1.5s"], "'1.5s' must be whole seconds, e.g. 5s"),
        (["--xds", "nowhere"], "endpoint 'nowhere' has no port"),
        (["--node-id", ""], "--node-id must not be empty"),
        (["--xds", "10.0.0.1:18000,10.0.0.1:18000"], "--xds lists a replica twice"),
        (["--xds", ","], "--xds needs at least one HOST:PORT"),
        (["--xds", "10.0.0.1:18000,nowhere"], "endpoint 'nowhere' has no port"),
        (
            ["--tls-cert", "envoy.pem", "--ca", "ca.pem"],
            "needs --tls-cert, --tls-key, --ca, --server-name together "
            "(missing --tls-key, --server-name)",
        ),
    ],
)
def test_bootstrap_refuses_bad_flags(args: list[str], message: str) -> None:
    """Bad bootstrap flags exit 2 with the fix."""
    result = run_xdsctl("bootstrap", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_docker_compose_file_is_valid() -> None:
    """`docker-compose config` accepts the file (no engine needed; .ci/run installs it)."""
    compose = shutil.which("docker-compose")
    if compose is None and not os.environ.get("CI"):
        pytest.skip("docker-compose is not installed here (apt-get install docker-compose)")
    assert compose is not None, "CI must install docker-compose (see .ci/run)"
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_demo_runs_and_stops_everything() -> None:
    """`xdsctl demo` serves blue through Envoy, follows a promote, and Ctrl-C stops it all."""
    listen, admin = free_port(), free_port()
    api, xds = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    metrics = f"127.0.0.1:{free_port()}"
    demo = subprocess.Popen(
        [
            *XDSCTL,
            "demo",
            "--listen-port",
            str(listen),
            "--admin-port",
            str(admin),
            "--api-listen",
            api,
            "--xds-listen",
            xds,
            "--metrics-listen",
            metrics,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert demo.stdout is not None
        lines = []
        while not lines or lines[-1] != "Ctrl-C stops everything.":
            line = demo.stdout.readline()
            assert line, "".join(lines)
            lines.append(line.rstrip("\n"))
        assert f"  xdsctl --server {api} traffic promote" in lines
        logs = next(line.split()[1] for line in lines if line.startswith("  logs "))
        assert any("xdsctl --server" in line and " status " in line for line in lines)
        assert any(f"http://{metrics}/metrics" in line for line in lines)

        def body() -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{listen}/", timeout=2) as response:
                return response.read().decode().strip()

        assert body() == "blue"
        # Green's process is real, run by the demo's scale hook: scaling green down
        # stops it, tagging it again (at 0) starts it.
        listed = run_xdsctl("--server", api, "deployments", "list", "-o", "json").json()
        green = next(d for d in listed if d["tag"] == "green")
        green_port = int(green["endpoints"][0].rsplit(":", 1)[1])
        assert not _refused(green_port) and green["desired"] == "running"
        assert run_xdsctl("--server", api, "traffic", "set", "--tags", "blue=100").returncode == 0
        wait_until(lambda: _refused(green_port), what="green's process to stop")
        assert (
            run_xdsctl("--server", api, "traffic", "set", "--tags", "blue=100,green=0").returncode
            == 0
        )
        wait_until(lambda: not _refused(green_port), what="green's process to start again")

        def green_confirmed() -> bool:
            listed = run_xdsctl("--server", api, "deployments", "list", "-o", "json").json()
            return any(d["tag"] == "green" and d["scale"] == "confirmed" for d in listed)

        wait_until(green_confirmed, what="the scale hook to confirm green")
        assert run_xdsctl("--server", api, "traffic", "promote").returncode == 0
        wait_until(lambda: body() == "green", what="green after promote")
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) == 0
        assert f"the demo's logs are kept in {logs}" in demo.stdout.read()
        assert (Path(logs) / "control-plane.log").stat().st_size > 0
        time.sleep(0.2)
        ports = (listen, admin, green_port, int(api.rsplit(":", 1)[1]), int(xds.rsplit(":", 1)[1]))
        for port in ports:
            assert _refused(port), f"port {port} still open after the demo stopped"
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def test_demo_ports_from_a_base_or_free_when_taken() -> None:
    """--port-base N: N to N+4; without it, a taken default is replaced and said so."""
    from xds_server.demo import demo_options

    based = demo_options(20000)
    assert (based.xds_listen, based.api_listen) == ("127.0.0.1:20000", "127.0.0.1:20001")
    assert (based.listen_port, based.admin_port, based.metrics_listen) == (
        20002,
        20003,
        "127.0.0.1:20004",
    )
    assert demo_options(20000, admin_port=9999).admin_port == 9999  # a flag wins
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            taken.bind(("127.0.0.1", 10000))
            taken.listen()
        except OSError:
            pass  # taken already: the demo must move either way
        options = demo_options(None)
    assert options.listen_port != 10000
    assert f"Envoy on {options.listen_port} (10000 is taken)" in options.moved
