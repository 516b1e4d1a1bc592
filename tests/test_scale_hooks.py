"""deploy/hooks/xds-scale, the scale hook docs/events.md shows, against stand-ins for
kubectl, systemctl and docker that record how they were called."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "hooks" / "xds-scale"


def _event(desired: str, labels: dict[str, str], kind: str = "deployment.scale") -> str:
    return json.dumps(
        {
            "id": "e1",
            "type": kind,
            "time": "2026-12-01T16:00:00.000+00:00",
            "service": "shop",
            "revision": 4,
            "actor": "alice",
            "data": {
                "deployment_id": "cm9n46thy000bwe6y784y4j0l",
                "service": "shop",
                "tag": "green",
                "endpoints": ["10.0.0.9:8080"],
                "labels": labels,
                "desired": desired,
            },
        }
    )


@pytest.fixture
def tools(tmp_path: Path) -> Path:
    """kubectl, systemctl and docker that append their arguments to calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("kubectl", "systemctl", "docker"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> {tmp_path / "calls.log"}\n')
        stub.chmod(0o755)
    return tmp_path


def _run(tools: Path, args: list[str], event: str) -> tuple[int, list[str]]:
    env = {**os.environ, "PATH": f"{tools / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], input=event, text=True, env=env, check=False
    )
    log = tools / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return done.returncode, calls


def test_kubectl(tools: Path) -> None:
    labels = {"k8s-deployment": "shop-v2", "replicas": "3"}
    assert _run(tools, ["kubectl", "--namespace", "shop"], _event("running", labels)) == (
        0,
        ["kubectl --namespace shop scale deployment shop-v2 --replicas 3"],
    )
    kubectl = ["kubectl", "--context", "prod", "--namespace", "shop"]
    assert _run(tools, kubectl, _event("stopped", labels)) == (
        0,
        ["kubectl --context prod --namespace shop scale deployment shop-v2 --replicas 0"],
    )
    # Not one of its deployments (no label): left alone, and delivered.
    assert _run(tools, ["kubectl", "--namespace", "shop"], _event("stopped", {})) == (0, [])
    # The namespace is the admin's to fix, not a label's.
    code, calls = _run(tools, ["kubectl"], _event("running", labels))
    assert code != 0 and calls == []


def test_systemd_and_compose(tools: Path) -> None:
    systemd = ["systemd", "--template", "upstream"]
    assert _run(tools, systemd, _event("running", {})) == (
        0,
        ["systemctl start upstream@shop-green.service"],
    )
    labels = {"unit-instance": "green-2"}
    assert _run(tools, [*systemd, "--user"], _event("stopped", labels)) == (
        0,
        ["systemctl --user stop upstream@green-2.service"],
    )
    compose = ["compose", "--project-directory", "/srv/shop"]
    assert _run(tools, compose, _event("running", {})) == (
        0,
        ["docker compose --project-directory /srv/shop up --detach --no-recreate shop-green"],
    )
    assert _run(tools, compose, _event("stopped", {"compose-service": "green"})) == (
        0,
        ["docker compose --project-directory /srv/shop stop green"],
    )


def test_other_events_and_bad_use(tools: Path) -> None:
    systemd = ["systemd", "--template", "upstream"]
    assert _run(tools, systemd, _event("running", {}, kind="traffic.changed")) == (0, [])
    code, calls = _run(tools, ["helm"], _event("running", {}))
    assert code != 0 and calls == []
