"""The blue-green walkthrough through the real CLI against a real server process."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.support.processes import XDSCTL, ServerProcess, free_port, run_xdsctl


def _traffic(server: ServerProcess) -> list[tuple[str, str, int]]:
    result = server.xdsctl("traffic", "get")
    assert result.returncode == 0, result.stderr
    return [(t["deployment_id"], t["tag"], t["weight"]) for t in result.yaml()["tags"]]


def _apply(server: ServerProcess, *args: str) -> dict[str, object]:
    result = server.xdsctl("apply", *args, "-o", "json")
    assert result.returncode == 0, result.stderr
    return result.json()


def _deployment_states(server: ServerProcess) -> dict[str, tuple[str | None, str]]:
    result = server.xdsctl("deployments", "list", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {d["id"]: (d["tag"], d["state"]) for d in result.json()}


class TestWalkthrough:
    def test_blue_green_workflow(self, server: ServerProcess) -> None:
        """apply, set, bluegreen, canary, mirror, promote twice, bluegreen again, scale down."""
        blue = _apply(server, "--deployment-tag", "blue", "--endpoint", "10.0.0.5:8080")
        assert (blue["tag"], blue["weight"], blue["revision"]) == ("blue", 100, 1)
        same = server.xdsctl("traffic", "set", "--tags", "blue=100")
        assert same.returncode == 0 and "unchanged (revision 1)" in same.stderr
        assert _traffic(server) == [(blue["deployment_id"], "blue", 100)]

        green = _apply(server, "--bluegreen", "--endpoint", "10.0.0.9:8080", "--label", "v=2")
        assert (green["tag"], green["weight"]) == ("green", 0)

        assert server.xdsctl("traffic", "set", "--tags", "blue=90,green=10").returncode == 0
        got = server.xdsctl("traffic", "get")
        assert got.yaml() == {
            "tags": [
                {"deployment_id": blue["deployment_id"], "tag": "blue", "weight": 90},
                {"deployment_id": green["deployment_id"], "tag": "green", "weight": 10},
            ],
            "revision": 3,  # apply, apply, set (asking for blue=100 again made none)
        }
        # The documented shape, key order included.
        assert got.stdout.startswith("tags:\n- deployment_id: ")

        mirrored = server.xdsctl(
            "traffic", "set", "--tags", "blue=100,green=0", "--mirror", "green=5", "-o", "json"
        )
        assert mirrored.returncode == 0, mirrored.stderr
        assert mirrored.json()["mirror"] == [
            {"deployment_id": green["deployment_id"], "tag": "green", "percent": 5}
        ]
        assert server.xdsctl("traffic", "get").yaml()["mirror"][0]["percent"] == 5

        promoted = server.xdsctl("traffic", "promote")
        assert promoted.returncode == 0, promoted.stderr
        assert "mirror cleared" in promoted.stderr
        assert _traffic(server) == [
            (blue["deployment_id"], "blue", 0),
            (green["deployment_id"], "green", 100),
        ]
        assert "mirror" not in server.xdsctl("traffic", "get").yaml()

        assert server.xdsctl("traffic", "promote").returncode == 0  # rollback
        assert _traffic(server) == [
            (blue["deployment_id"], "blue", 100),
            (green["deployment_id"], "green", 0),
        ]

        third = _apply(server, "--bluegreen", "--endpoint", "10.0.0.10:8080")
        assert third["tag"] == "green"
        assert third["replaced_deployment_id"] == green["deployment_id"]

        scaled = server.xdsctl("traffic", "set", "--tags", "green=100")
        assert scaled.returncode == 0
        assert "scaled down: blue" in scaled.stderr
        assert _deployment_states(server) == {
            blue["deployment_id"]: ("blue", "scaled_down"),
            green["deployment_id"]: (None, "scaled_down"),
            third["deployment_id"]: ("green", "active"),
        }

        history = server.xdsctl("traffic", "history", "-o", "json").json()
        assert [e["revision"] for e in history] == list(range(8, 0, -1))
        assert history[0]["command"] == "traffic set --service default --tags green=100"
        assert history[0]["before"]["weights"] == {"blue": 100, "green": 0}
        assert history[0]["after"]["bindings"]["green"] == third["deployment_id"]
        assert "@" in history[0]["actor"]

        rolled = server.xdsctl("traffic", "rollback", "-o", "json")
        assert rolled.returncode == 0, rolled.stderr
        assert [(t["tag"], t["weight"]) for t in rolled.json()["tags"]] == [
            ("blue", 100),
            ("green", 0),
        ]
        assert _deployment_states(server)[blue["deployment_id"]] == ("blue", "active")

    def test_outputs_for_people(self, server: ServerProcess) -> None:
        """Text and table outputs name what happened; get shows one deployment."""
        applied = server.xdsctl("apply", "--endpoint", "app.internal:8080", "--label", "version=v1")
        assert applied.returncode == 0, applied.stderr
        assert "applied to service default with tag blue (weight 100, revision 1)" in applied.stdout
        deployment_id = applied.stdout.split()[1]

        listing = server.xdsctl("deployments", "list")
        assert listing.stdout.splitlines()[0].split() == [
            "ID",
            "SERVICE",
            "TAG",
            "STATE",
            "DESIRED",
            "SCALE",
            "ENDPOINTS",
            "AGE",
        ]
        assert deployment_id in listing.stdout and "app.internal:8080" in listing.stdout
        # Tagged: it should run; no hook subscribes to deployment.scale to confirm it.
        row = listing.stdout.splitlines()[1].split()
        assert row[3:6] == ["active", "running", "no-hook"]
        assert row[7].endswith("s")  # a relative age (seconds old); YAML has the time
        wide = server.xdsctl("deployments", "list", "-o", "wide").stdout.splitlines()
        assert wide[0].split()[-2:] == ["LABELS", "CREATED"] and "version=v1" in wide[1]

        traffic = server.xdsctl("traffic", "get", "-o", "table").stdout.splitlines()
        assert traffic[0].split() == ["TAG", "WEIGHT", "MIRROR", "DEPLOYMENT", "ENDPOINTS", "AGE"]
        assert traffic[1].split()[:5] == ["blue", "100%", "-", deployment_id, "app.internal:8080"]
        assert traffic[-1] == "revision 1"
        assert server.xdsctl("traffic", "get").yaml()["tags"][0]["tag"] == "blue"  # still YAML

        got = server.xdsctl("deployments", "get", deployment_id, "-o", "yaml")
        assert got.yaml()["endpoints"] == ["app.internal:8080"]
        assert got.yaml()["labels"] == {"version": "v1"}

        moved = server.xdsctl(
            "deployments",
            "set-endpoints",
            deployment_id,
            "--endpoint",
            "[::1]:9000",
            "--endpoint",
            "10.1.1.1:80",
            "-o",
            "yaml",
        )
        assert moved.returncode == 0, moved.stderr
        assert moved.yaml()["endpoints"] == ["[::1]:9000", "10.1.1.1:80"]
        # set-endpoints does not bump the revision.
        assert server.xdsctl("traffic", "get").yaml()["revision"] == 1

        shop = server.xdsctl("apply", "--service", "shop", "--endpoint", "10.0.0.7:80")
        assert "services set shop --domain" in shop.stderr
        created = server.xdsctl("services", "set", "shop", "--domain", "shop.example.com")
        assert created.stdout == "service shop answers shop.example.com\n"
        services = server.xdsctl("services", "list", "-o", "yaml").yaml()
        routing = {
            "override_header": None,
            "sticky_header": None,
            "shadow_header": "x-shadow",
            "mirror_host_suffix": True,
        }
        assert services == [
            {"name": "default", "domains": ["*"], "revision": 1, "routing": routing},
            {"name": "shop", "domains": ["shop.example.com"], "revision": 1, "routing": routing},
        ]
        everything = server.xdsctl("deployments", "list", "-A", "-o", "json").json()
        assert {d["service"] for d in everything} == {"default", "shop"}


class TestProcess:
    def test_state_survives_sigkill(self, tmp_path: Path) -> None:
        """Killed with SIGKILL and restarted on the same file, the state is identical."""
        server = ServerProcess(tmp_path / "state.db").start()
        try:
            server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:8080")
            server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:8080")
            server.xdsctl("traffic", "set", "--tags", "blue=90,green=10", "--mirror", "green=1.5")
            server.xdsctl("services", "set", "default", "--domain", "*", "--domain", "a.example")
            before = server.snapshot()
            assert server.signal(signal.SIGKILL) == -signal.SIGKILL
            server.start()
            assert server.snapshot() == before
            # And it keeps working after the restart.
            assert server.xdsctl("traffic", "promote").returncode == 0
        finally:
            server.stop()

    def test_sigterm_shuts_down_gracefully(self, server: ServerProcess) -> None:
        """SIGTERM drains and exits 0, logging the stop."""
        assert server.signal(signal.SIGTERM) == 0
        assert '"event": "server.stopped"' in server.log.read_text()

    def test_unreachable_server_exits_3(self) -> None:
        """No server at the address: exit 3 and a hint to start one."""
        result = run_xdsctl("traffic", "get", "--server", f"127.0.0.1:{free_port()}")
        assert result.returncode == 3
        assert "cannot reach the xds_server" in result.stderr
        assert "xdsctl serve" in result.stderr

    def test_server_env_and_flag(self, server: ServerProcess) -> None:
        """--server before or after the command, and XDSCTL_SERVER, all reach the server."""
        assert run_xdsctl("--server", server.address, "services", "list").returncode == 0
        assert run_xdsctl("services", "list", "--server", server.address).returncode == 0
        assert server.xdsctl("services", "list").returncode == 0

    def test_state_file_not_usable(self, tmp_path: Path) -> None:
        """serve on a file that is not a state file fails with a clear message."""
        bad = tmp_path / "bad.db"
        bad.write_bytes(b"garbage" * 1000)
        address = f"127.0.0.1:{free_port()}"
        result = run_xdsctl("serve", "--state", str(bad), "--api-listen", address)
        assert result.returncode == 1
        assert f"state file {bad} is not usable" in result.stderr


class TestAuditLog:
    def test_every_change_is_an_audit_record(self, server: ServerProcess) -> None:
        """Each change logs actor, command and before/after; refusals and endpoint moves too."""
        deployment = server.xdsctl("apply", "--endpoint", "10.0.0.5:80", "-o", "json").json()
        server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.6:80")
        server.xdsctl("traffic", "set", "--tags", "blue=60,green=40")
        server.xdsctl(
            "deployments", "set-endpoints", deployment["deployment_id"], "--endpoint", "10.0.0.7:80"
        )
        events = [
            json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")
        ]
        changes = [e for e in events if e["event"] == "operator.change"]
        traffic = next(e for e in changes if e["method"] == "SetTraffic")
        assert traffic["before"]["weights"] == {"blue": 100, "green": 0}
        assert traffic["after"]["weights"] == {"blue": 60, "green": 40}
        assert "@" in traffic["actor"] and traffic["revision"] == 3
        moved = next(e for e in changes if e["method"] == "SetEndpoints")
        assert (moved["before"], moved["after"]) == (["10.0.0.5:80"], ["10.0.0.7:80"])
        assert [e["revision"] for e in changes if "revision" in e] == [1, 2, 3]


def test_asking_again_is_unchanged(server: ServerProcess) -> None:
    """The same `traffic set` twice: the second answers "unchanged (revision N)", exit 0,
    and makes no revision (history is as it was)."""
    applied = server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80")
    assert applied.returncode == 0, applied.stderr
    first = server.xdsctl("traffic", "set", "--tags", "blue=100")
    assert first.returncode == 0 and "unchanged (revision 1)" in first.stderr
    history = server.xdsctl("traffic", "history", "-o", "json").json()
    again = server.xdsctl("traffic", "set", "--tags", "blue=100", "-o", "json")
    assert again.returncode == 0 and "unchanged (revision 1)" in again.stderr
    assert again.json()["revision"] == 1
    assert server.xdsctl("traffic", "history", "-o", "json").json() == history


def test_version_names_both_sides(server: ServerProcess) -> None:
    from xds_server import __version__

    shown = server.xdsctl("version", "-o", "json")
    assert shown.returncode == 0 and shown.json() == {"client": __version__, "server": __version__}
    assert server.xdsctl("version").stdout == f"client: {__version__}\nserver: {__version__}\n"


def test_status_fail_unsynced_with_no_envoy(server: ServerProcess) -> None:
    """No Envoy connected is not "in sync": --fail-unsynced exits 4 and says why."""
    assert server.xdsctl("status").returncode == 0
    unsynced = server.xdsctl("status", "--fail-unsynced")
    assert unsynced.returncode == 4 and "--fail-unsynced: no Envoy is connected" in unsynced.stderr
    assert "no Envoy is connected" in unsynced.stdout  # the table is printed first


def _typed(leader: int, follower: int, args: tuple[str, ...], address: str, answer: str) -> Any:
    """Run xdsctl with a terminal (a pty) for stdin, and type ``answer``."""
    process = subprocess.Popen(
        [*XDSCTL, *args],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "XDSCTL_SERVER": address},
    )
    os.write(leader, answer.encode())
    stdout, stderr = process.communicate(timeout=30)
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def test_deployments_delete_names_what_it_makes_unrestorable(server: ServerProcess) -> None:
    blue = server.xdsctl(
        "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80", "-o", "json"
    )
    old = blue.json()["deployment_id"]
    assert server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:80").returncode == 0
    assert server.xdsctl("traffic", "promote").returncode == 0
    assert server.xdsctl("traffic", "set", "--tags", "green=100").returncode == 0  # blue down

    code, stderr = _typed_delete(server, old, "n\n")
    assert code == 1 and f"not deleted: deployment {old} is kept" in stderr
    code, stderr = _typed_delete(server, old, "\x04")  # Ctrl-D: no, and no traceback
    assert code == 1 and "Traceback" not in stderr and "not deleted" in stderr
    assert "revisions 1, 2, 3 of service default route to it" in stderr
    assert old in server.xdsctl("deployments", "list").stdout

    code, stderr = _typed_delete(server, old, "y\n")
    assert code == 0, stderr
    assert old not in server.xdsctl("deployments", "list").stdout


def _typed_delete(server: ServerProcess, deployment: str, answer: str) -> tuple[int, str]:
    leader, follower = pty.openpty()
    try:
        done = _typed(
            leader, follower, ("deployments", "delete", deployment), server.address, answer
        )
    finally:
        os.close(leader)
        os.close(follower)
    return done.returncode, done.stderr


def test_deployments_delete_without_a_terminal_or_with_yes_asks_nothing(
    server: ServerProcess,
) -> None:
    first = server.xdsctl(
        "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80", "-o", "json"
    )
    assert (
        server.xdsctl(
            "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.6:80", "--in-place"
        ).returncode
        == 0
    )
    old = first.json()["deployment_id"]
    deleted = server.xdsctl("deployments", "delete", old, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert "revision 1 of service default routes to it" in deleted.stderr


def test_dry_run_checks_and_stores_nothing(server: ServerProcess, tmp_path: Path) -> None:
    """Every write with --dry-run: the server's answer, exit 0 (1 when it would be
    refused), and nothing stored: history, deployments, hooks and tokens as before."""
    _apply(server, "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80")
    _apply(server, "--bluegreen", "--endpoint", "10.0.0.9:80")
    before = server.snapshot()
    tried = server.xdsctl("traffic", "set", "--tags", "blue=90,green=10", "--dry-run", "-o", "json")
    assert tried.returncode == 0, tried.stderr
    assert [t["weight"] for t in tried.json()["tags"]] == [90, 10]
    assert "would change default: blue=100,green=0 -> blue=90,green=10 (revision 2 -> 3)" in (
        tried.stderr
    )
    assert "dry run: the server checked this and would do it; nothing was stored" in tried.stderr
    refused = server.xdsctl("traffic", "set", "--tags", "blue=90,green=20", "--dry-run")
    assert refused.returncode == 1 and "weights must add up to 100" in refused.stderr
    secret = tmp_path / "s"
    secret.write_text("k")
    secret.chmod(0o600)
    for args in (
        ("apply", "--bluegreen", "--endpoint", "10.0.0.10:80", "--in-place"),
        ("traffic", "promote"),
        ("traffic", "rollback"),
        ("services", "set", "default", "--domain", "app.example.com"),
        ("hooks", "add", "chat", "--url", "http://127.0.0.1:9/x", "--secret-file", str(secret)),
        ("tokens", "create", "--name", "ci", "--role", "viewer"),
        ("rollout", "start", "--to", "green", "--steps", "10,100", "--interval", "1m"),
    ):
        result = server.xdsctl(*args, "--dry-run")
        assert result.returncode == 0, (args, result.stderr)
        assert "nothing was stored or pushed" in result.stderr, args
        assert "xdst_" not in result.stdout  # no token is made up
    assert server.snapshot() == before
    assert server.xdsctl("tokens", "list", "-o", "json").json() == []


def test_a_dry_run_revoke_keeps_the_token(server: ServerProcess, tmp_path: Path) -> None:
    admin, bot = tmp_path / "admin.token", tmp_path / "bot.token"
    for name, role, path in (("admin", "admin", admin), ("bot", "viewer", bot)):
        made = server.xdsctl(
            "tokens",
            "create",
            "--name",
            name,
            "--role",
            role,
            "--output-file",
            str(path),
            env={"XDSCTL_TOKEN_FILE": str(admin)} if name == "bot" else None,
        )
        assert made.returncode == 0, made.stderr
    as_admin = {"XDSCTL_TOKEN_FILE": str(admin)}
    tried = server.xdsctl("tokens", "revoke", "bot", "--dry-run", env=as_admin)
    assert tried.returncode == 0 and "token bot (viewer) would be revoked" in tried.stdout
    still = server.xdsctl("status", env={"XDSCTL_TOKEN_FILE": str(bot)})
    assert still.returncode == 0, still.stderr
