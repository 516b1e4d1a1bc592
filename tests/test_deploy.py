"""What deploy/ and the image ship, run for real: the image's default command, the
compose file's healthcheck, the systemd unit (systemd-analyze), the alert rules
(promtool, then a real Prometheus scraping a real control plane until an alert fires)
and the Grafana dashboard's queries."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import XDSCTL, ServerProcess, free_port, run_xdsctl
from tests.support.stack import wait_until
from xds_server.testing import ScriptedAdsClient
from xds_server.xds.resources import CLUSTER

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "xds-server.json"


def _tool(name: str, package: str) -> str:
    """A tool .ci/run installs from Debian: missing is a failure on CI, a skip here."""
    found = shutil.which(name)
    if found is None and not os.environ.get("CI"):
        pytest.skip(f"{name} is not installed here (apt-get install {package})")
    assert found is not None, f"CI must install {package} (see .ci/run)"
    return found


def test_the_images_default_command_starts_a_working_control_plane(tmp_path: Path) -> None:
    """The Dockerfile's CMD, run outside Docker (its ports moved to free ones, /data to a
    temporary folder): it starts, is ready, and answers xdsctl on the API port."""
    line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD")
    )
    command: list[str] = json.loads(line.removeprefix("CMD"))
    assert "--insecure" not in command
    ports = {port: free_port() for port in ("18000", "18001", "9102")}

    def moved(arg: str) -> str:
        arg = arg.replace("/data/", f"{tmp_path}/")
        for port, free in ports.items():
            arg = re.sub(rf":{port}$", f":{free}", arg)
        return arg

    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*XDSCTL, *(moved(arg) for arg in command)],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
        )
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                url = f"http://127.0.0.1:{ports['9102']}/readyz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        wait_until(ready, timeout=20, what="the image's command to be ready")
        status = run_xdsctl("--server", f"127.0.0.1:{ports['18001']}", "status")
        assert status.returncode == 0, status.stderr
    finally:
        process.kill()
        process.wait()


def test_compose_checks_readiness_and_publishes_metrics_on_loopback() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    plane = compose["services"]["control-plane"]
    assert "/readyz" in " ".join(plane["healthcheck"]["test"])
    assert "127.0.0.1:9102:9102" in plane["ports"]
    assert "0.0.0.0:9102" in plane["command"]
    assert compose["services"]["envoy"]["depends_on"]["control-plane"] == {
        "condition": "service_healthy"
    }


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """systemd-analyze finds nothing to say of the unit (with xdsctl where it is here)."""
    analyze = _tool("systemd-analyze", "systemd")
    unit = (ROOT / "deploy" / "systemd" / "xds-server.service").read_text()
    for setting in (
        "DynamicUser=yes",
        "StateDirectory=xds-server",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "--api-listen 127.0.0.1:18001",
    ):
        assert setting in unit, setting
    xdsctl = shutil.which("xdsctl")
    assert xdsctl is not None
    here = tmp_path / "xds-server.service"
    here.write_text(unit.replace("/usr/local/bin/xdsctl", xdsctl))
    done = subprocess.run(
        [analyze, "verify", str(here)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == "", done.stdout + done.stderr


def test_the_alert_rules_check_and_pass_their_unit_tests() -> None:
    promtool = _tool("promtool", "prometheus")
    for args in (["check", "rules", str(ALERTS)], ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run(
            [promtool, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ALERTS.parent,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "SUCCESS" in done.stdout


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _families(text: str) -> set[str]:
    """Every family and sample name on a /metrics page."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def test_every_dashboard_query_asks_for_metrics_that_exist(server: ServerProcess) -> None:
    exposed = _families(server.http("/metrics")[1])
    wanted = {name for expr in _dashboard_queries() for name in re.findall(r"\bxds_\w+", expr)}
    assert len(wanted) >= 12
    missing = {
        name
        for name in wanted
        if name not in exposed and re.sub(r"_(total|bucket|sum|count)$", "", name) not in exposed
    }
    assert missing == set()


class Prometheus:
    """A real Prometheus scraping one control plane every second, with our alerts."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        binary = _tool("prometheus", "prometheus")
        config = tmp_path / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(ALERTS)],
                    "scrape_configs": [
                        {"job_name": "xds-server", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.address = f"127.0.0.1:{free_port()}"
        self.log = tmp_path / "prometheus.log"
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address={self.address}",
                ],
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
            )
        wait_until(self._ready, timeout=30, what="Prometheus ready")

    def _ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()[-2000:]
        try:
            with urllib.request.urlopen(f"http://{self.address}/-/ready", timeout=1) as reply:
                return reply.status == 200
        except OSError:
            return False

    def api(self, path: str, **query: str) -> Any:
        url = f"http://{self.address}/api/v1/{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            body = json.loads(reply.read())
        assert body["status"] == "success", body
        return body["data"]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def test_a_real_prometheus_fires_an_alert_on_a_nacking_node(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Prometheus scrapes the control plane; a scripted node NACKs the clusters; the
    XdsEnvoyNack alert fires. Every dashboard query evaluates there too."""
    applied = server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80")
    assert applied.returncode == 0, applied.stderr
    prometheus = Prometheus(tmp_path, server.metrics_address)
    try:
        wait_until(
            lambda: prometheus.api("query", query='xds_nacks_total{type="cds"}')["result"],
            timeout=20,
            what="the NACK counter scraped at 0",
        )

        async def refuse() -> None:
            async with ScriptedAdsClient(server.xds_address, "nacker") as client:
                await client.request(CLUSTER)
                received = await client.receive()
                await client.request(CLUSTER, nonce=received.nonce, error="scripted refusal")
                await asyncio.sleep(0.5)

        asyncio.run(refuse())

        def firing() -> list[dict[str, Any]]:
            alerts = prometheus.api("alerts")["alerts"]
            return [
                a
                for a in alerts
                if a["labels"]["alertname"] == "XdsEnvoyNack" and a["state"] == "firing"
            ]

        fired = wait_until(firing, timeout=30, what="XdsEnvoyNack firing")
        assert fired[0]["labels"]["type"] == "cds"
        for expr in _dashboard_queries():
            prometheus.api("query", query=expr)  # each parses and evaluates
    finally:
        prometheus.stop()
