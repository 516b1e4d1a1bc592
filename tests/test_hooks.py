"""Events and hooks through the real server and CLI: a real HTTP receiver, real commands.

What the issue asks: signed deliveries of every event in commit order per service,
retries after 500s and after downtime, delivery by id across a kill -9, exec hooks
that start and stop a real process, and a hanging hook that delays only itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess
from tests.support.receiver import Receiver
from xds_server.hooks.send import send
from xds_server.model.hooks import Hook
from xds_server.store.outbox import Outcome
from xds_server.testing import ScriptedAdsClient
from xds_server.xds.resources import CLUSTER

SECRET = "s3cret-for-tests"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver().start()
    yield running
    running.stop()


def _ok(result: object) -> None:
    assert getattr(result, "returncode", 1) == 0, getattr(result, "stderr", "")


def _add_webhook(server: ServerProcess, receiver: Receiver, tmp_path: Path, *args: str) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    _ok(
        server.xdsctl(
            "hooks", "add", "rx", "--url", receiver.url, "--secret-file", str(secret), *args
        )
    )


def _release(server: ServerProcess, service: str = "default") -> None:
    """blue at 100, then green beside it at 0, a canary, and green promoted."""
    for args in (
        ("apply", "--service", service, "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"),
        ("apply", "--service", service, "--bluegreen", "--endpoint", "10.0.0.9:80"),
        ("traffic", "set", "--service", service, "--tags", "blue=90,green=10"),
        ("traffic", "promote", "--service", service),
    ):
        _ok(server.xdsctl(*args))


def test_signed_deliveries_of_every_event_in_commit_order_per_service(
    server: ServerProcess, receiver: Receiver, tmp_path: Path
) -> None:
    _add_webhook(server, receiver, tmp_path)
    _release(server, "shop")
    _release(server, "cart")
    _ok(server.xdsctl("services", "set", "shop", "--domain", "shop.example.com"))
    # Scale blue down by leaving it out: its deployment should stop.
    _ok(server.xdsctl("traffic", "set", "--service", "shop", "--tags", "green=100"))

    expected_shop = [
        "service.changed",  # created by the first apply
        "deployment.applied",
        "traffic.changed",
        "deployment.scale",  # blue: running
        "deployment.applied",
        "traffic.changed",  # green joins at 0
        "deployment.scale",  # green: running at weight 0
        "traffic.changed",  # 90/10
        "traffic.changed",  # promote
        "service.changed",  # the domain
        "traffic.changed",  # green=100
        "deployment.scale",  # blue: stopped
    ]
    expected_cart = expected_shop[:9]
    deliveries = receiver.wait_for(len(expected_shop) + len(expected_cart))
    time.sleep(1.0)  # nothing more arrives
    assert len(receiver.deliveries) == len(expected_shop) + len(expected_cart)

    for delivery in deliveries:
        assert delivery.signed_by(SECRET), delivery.headers
        event = delivery.event
        assert delivery.headers["x-xds-event"] == event["type"]
        assert delivery.headers["x-xds-delivery"] == event["id"]
        assert delivery.headers["content-type"] == "application/json"
        assert set(event) == {"id", "type", "time", "service", "revision", "actor", "data"}
        assert SECRET not in delivery.body.decode()
    by_service: dict[str, list[dict]] = {}
    for delivery in deliveries:
        by_service.setdefault(delivery.event["service"], []).append(delivery.event)
    assert [e["type"] for e in by_service["shop"]] == expected_shop
    assert [e["type"] for e in by_service["cart"]] == expected_cart
    # Commit order: revisions never go back within a service.
    revisions = [e["revision"] for e in by_service["shop"]]
    assert revisions == sorted(revisions)
    assert len({d.event["id"] for d in deliveries}) == len(deliveries)

    shop = by_service["shop"]
    scale = [e["data"] for e in shop if e["type"] == "deployment.scale"]
    assert [(s["tag"], s["desired"]) for s in scale] == [
        ("blue", "running"),
        ("green", "running"),
        ("blue", "stopped"),  # it keeps its tag: an orchestrator knows which it was
    ]
    assert scale[0]["endpoints"] == ["10.0.0.5:80"] and scale[0]["service"] == "shop"
    assert scale[2]["deployment_id"] == scale[0]["deployment_id"]
    promoted = shop[8]["data"]
    assert promoted["after"]["weights"] == {"blue": 0, "green": 100}
    assert promoted["command"].startswith("traffic promote")

    listing = server.xdsctl("deployments", "list", "--service", "shop", "-o", "json").json()
    assert {(d["desired"], d["scale"]) for d in listing} == {
        ("stopped", "confirmed"),
        ("running", "confirmed"),
    }


def test_a_refused_change_emits_nothing(
    server: ServerProcess, receiver: Receiver, tmp_path: Path
) -> None:
    _ok(server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"))
    _add_webhook(server, receiver, tmp_path)
    refused = server.xdsctl("traffic", "set", "--tags", "blue=90,green=20")
    assert refused.returncode == 1
    _ok(server.xdsctl("traffic", "set", "--tags", "blue=100"))  # no change of weights
    _ok(server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:80"))
    delivered = receiver.wait_for(3)
    time.sleep(1.0)
    assert [d.event["type"] for d in receiver.deliveries] == [
        "deployment.applied",
        "traffic.changed",
        "deployment.scale",
    ]
    assert delivered[0].event["type"] == "deployment.applied"


def test_retried_after_three_500s_and_after_the_receiver_was_down(
    server: ServerProcess, receiver: Receiver, tmp_path: Path
) -> None:
    _add_webhook(server, receiver, tmp_path, "--events", "traffic.*")
    receiver.answers.extend([500, 500, 500])
    _ok(server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"))
    first = receiver.wait_for(1, timeout=30)
    assert [d.status for d in receiver.deliveries] == [500, 500, 500, 200]
    assert len({d.headers["x-xds-delivery"] for d in receiver.deliveries}) == 1

    attempts = server.xdsctl("hooks", "deliveries", "rx", "-o", "json").json()
    assert [(a["attempt"], a["outcome"], a["status"]) for a in attempts] == [
        (4, "delivered", "200"),
        (3, "retrying", "500"),
        (2, "retrying", "500"),
        (1, "retrying", "500"),
    ]
    # Exponential backoff: 1 s, 2 s, 4 s (each within the 25 % jitter).
    gaps = [b.at - a.at for a, b in zip(receiver.deliveries, receiver.deliveries[1:], strict=False)]
    for gap, base in zip(gaps, (1, 2, 4), strict=True):
        assert base * 0.7 <= gap <= base * 1.3 + 1.0, gaps

    receiver.stop()
    _ok(server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:80"))
    time.sleep(5)
    receiver.start()
    delivered = receiver.wait_for(2, timeout=60)
    assert delivered[0].event["id"] == first[0].event["id"]
    assert delivered[1].event["type"] == "traffic.changed"
    assert delivered[1].event["data"]["after"]["weights"] == {"blue": 100, "green": 0}
    failures = [
        a
        for a in server.xdsctl("hooks", "deliveries", "rx", "-o", "json").json()
        if a["event_id"] == delivered[1].event["id"] and a["outcome"] == "retrying"
    ]
    assert failures and all(a["status"] == "ConnectError" for a in failures)
    listed = server.xdsctl("hooks", "list", "-o", "json").json()
    assert listed[0]["pending"] == 0 and listed[0]["failed"] == 0 and listed[0]["signed"]
    assert server.metric("xds_hook_attempts_total", hook="rx", outcome="delivered") == 2
    retrying = server.metric("xds_hook_attempts_total", hook="rx", outcome="retrying")
    assert retrying == 3 + len(failures)


def test_kill_9_between_commit_and_delivery_still_delivers(
    server: ServerProcess, receiver: Receiver, tmp_path: Path
) -> None:
    _add_webhook(server, receiver, tmp_path, "--events", "deployment.applied")
    receiver.hang.set()
    _ok(server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"))
    deadline = time.monotonic() + 10
    while receiver.open_requests == 0:  # the delivery is in flight
        assert time.monotonic() < deadline, "the delivery never started"
        time.sleep(0.05)
    server.stop()  # kill -9
    receiver.hang.clear()
    receiver.stop()
    receiver.start()
    server.start()
    delivered = receiver.wait_for(1, timeout=30)
    assert delivered[0].event["type"] == "deployment.applied"
    deployment = server.xdsctl("deployments", "list", "-o", "json").json()[0]
    assert delivered[0].event["data"]["deployment"]["id"] == deployment["id"]

    # Committed while the receiver is down, killed before any delivery: delivered too.
    receiver.stop()
    _ok(server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:80"))
    server.stop()
    receiver.start()
    server.start()
    ids = {d.event["data"]["deployment"]["id"] for d in receiver.wait_for(2, timeout=30)}
    assert ids == {d["id"] for d in server.xdsctl("deployments", "list", "-o", "json").json()}


SCALER = """
import json, os, signal, subprocess, sys
event = json.load(sys.stdin)
if event["type"] != "deployment.scale" or event["data"]["tag"] != "green":
    sys.exit(0)
pidfile = sys.argv[1]
if event["data"]["desired"] == "running":
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    open(pidfile, "w").write(f"{event['data']['deployment_id']} {child.pid}")
    print("started", child.pid)
elif os.path.exists(pidfile):
    deployment, pid = open(pidfile).read().split()
    if deployment == event["data"]["deployment_id"]:
        os.kill(int(pid), signal.SIGTERM)
        os.remove(pidfile)
        print("stopped", pid)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of a process that exited is reaped by init; until then a zombie.
    status = (
        Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}").exists() else "X"
    )
    return status not in ("Z", "X")


def test_an_exec_hook_starts_and_stops_a_real_process(
    server: ServerProcess, tmp_path: Path
) -> None:
    script = tmp_path / "scale.py"
    script.write_text(SCALER)
    pidfile = tmp_path / "green.pid"
    command = f"{sys.executable} {script} {pidfile}"
    _ok(server.xdsctl("hooks", "add", "scaler", "--exec", command, "--events", "deployment.scale"))
    _ok(server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"))
    _ok(server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:80"))  # green at 0
    deadline = time.monotonic() + 15
    while not pidfile.exists():
        assert time.monotonic() < deadline, server.xdsctl("hooks", "deliveries", "scaler").stdout
        time.sleep(0.1)
    green_id, pid = pidfile.read_text().split()
    assert _alive(int(pid))

    _ok(server.xdsctl("traffic", "set", "--tags", "blue=100"))  # green scaled down
    deadline = time.monotonic() + 15
    while _alive(int(pid)):
        assert time.monotonic() < deadline, "green's process still runs"
        time.sleep(0.1)
    assert not pidfile.exists()

    # Confirmed: the last scale event of each deployment was delivered.
    deadline = time.monotonic() + 10
    while True:
        listing = {d["id"]: d for d in server.xdsctl("deployments", "list", "-o", "json").json()}
        if listing[green_id]["scale"] == "confirmed":
            break
        assert time.monotonic() < deadline, listing
        time.sleep(0.1)
    assert listing[green_id]["desired"] == "stopped"
    table = server.xdsctl("deployments", "list").stdout
    assert "confirmed" in table and "stopped" in table
    attempts = server.xdsctl("hooks", "deliveries", "scaler", "-o", "json").json()
    assert all(a["outcome"] == "delivered" and a["status"] == "exit 0" for a in attempts)
    assert any(a["response"].startswith("stopped") for a in attempts)


def test_an_exec_hook_that_overruns_is_killed_with_its_process_group(
    server: ServerProcess, tmp_path: Path
) -> None:
    marker = tmp_path / "grandchild.pid"
    script = tmp_path / "slow.sh"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {marker}\nwait\n")
    script.chmod(0o755)
    _ok(
        server.xdsctl(
            "hooks",
            "add",
            "slow",
            "--exec",
            str(script),
            "--timeout",
            "1s",
            "--events",
            "traffic.*",
        )
    )
    result = server.xdsctl("hooks", "test", "slow")
    assert result.returncode == 1
    assert "timeout after 1s (process group killed)" in result.stdout + result.stderr
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild):
        assert time.monotonic() < deadline, "the hook's child outlived the timeout"
        time.sleep(0.05)


def test_a_hook_that_never_answers_delays_only_itself(
    server: ServerProcess, receiver: Receiver, tmp_path: Path
) -> None:
    _ok(server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"))
    _ok(server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:80"))
    _ok(
        server.xdsctl(
            "hooks",
            "add",
            "stuck",
            "--url",
            receiver.url,
            "--timeout",
            "6s",
            "--events",
            "traffic.changed",
        )
    )
    receiver.hang.set()
    _ok(server.xdsctl("traffic", "set", "--tags", "blue=90,green=10"))
    deadline = time.monotonic() + 5
    while receiver.open_requests == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    hung_at = time.monotonic()
    # While that delivery hangs, commits go through at their usual pace.
    took = []
    for weights in ("blue=80,green=20", "blue=70,green=30", "blue=60,green=40"):
        started = time.monotonic()
        _ok(server.xdsctl("traffic", "set", "--tags", weights))
        took.append(time.monotonic() - started)
    assert receiver.open_requests == 1 and time.monotonic() - hung_at < 6, took
    print("commit seconds while a hook hangs:", [round(t, 3) for t in took])

    # The hung attempt times out and is retried; the receiver answers from then on.
    deadline = time.monotonic() + 15
    while True:
        attempts = server.xdsctl("hooks", "deliveries", "stuck", "-o", "json").json()
        if attempts:
            break
        assert time.monotonic() < deadline, "the hung attempt never timed out"
        time.sleep(0.2)
    assert [(a["attempt"], a["status"], a["outcome"]) for a in attempts] == [
        (1, "timeout after 6s", "retrying")
    ]
    receiver.hang.clear()
    delivered = receiver.wait_for(4, timeout=40)
    assert [d.event["data"]["after"]["weights"]["green"] for d in delivered] == [10, 20, 30, 40]


def test_hooks_test_and_list_and_remove(
    server: ServerProcess, receiver: Receiver, tmp_path: Path
) -> None:
    _add_webhook(server, receiver, tmp_path, "--events", "rollout.*,traffic.changed")
    tested = server.xdsctl("hooks", "test", "rx")
    _ok(tested)
    assert "hook rx: hook.test" in tested.stdout and "delivered (200)" in tested.stdout
    event = receiver.delivered()[0].event
    assert event["type"] == "hook.test" and event["data"] == {"hook": "rx"}
    assert receiver.delivered()[0].signed_by(SECRET)

    listing = server.xdsctl("hooks", "list")
    assert listing.stdout.split("\n")[0].split() == [
        "NAME",
        "KIND",
        "TARGET",
        "EVENTS",
        "SIGNED",
        "TIMEOUT",
        "PENDING",
        "FAILED",
    ]
    assert "rollout.*,traffic.changed" in listing.stdout and SECRET not in listing.stdout
    shown = server.xdsctl("hooks", "list", "-o", "json").json()
    assert SECRET not in json.dumps(shown)

    receiver.stop()
    failed = server.xdsctl("hooks", "test", "rx")
    assert failed.returncode == 1 and "NOT delivered (ConnectError)" in failed.stdout

    _ok(server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"))
    removed = server.xdsctl("hooks", "remove", "rx")
    _ok(removed)
    assert "hook rx removed; 1 undelivered events dropped" in removed.stdout
    assert server.xdsctl("hooks", "list", "-o", "json").json() == []
    assert server.xdsctl("hooks", "add", "x", "--exec", "").returncode == 2


def test_secrets_stay_out_of_logs_and_exports(
    server: ServerProcess, receiver: Receiver, tmp_path: Path
) -> None:
    _add_webhook(server, receiver, tmp_path)
    _ok(server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"))
    receiver.wait_for(3)
    exported = server.xdsctl("state", "export")
    _ok(exported)
    assert SECRET not in exported.stdout
    hooks = json.loads(exported.stdout)["hooks"]
    assert hooks[0]["signed"] is True and "secret" not in hooks[0]
    with_secrets = json.loads(server.xdsctl("state", "export", "--include-secrets").stdout)
    assert with_secrets["hooks"][0]["secret"] == SECRET
    assert SECRET not in server.log.read_text()

    # Into the same store, the secret kept is the store's; into a new one, it is refused.
    document = tmp_path / "state.json"
    document.write_text(exported.stdout)
    _ok(server.xdsctl("state", "import", "--replace", str(document)))
    other = ServerProcess(tmp_path / "other.db").start()
    try:
        tried = other.xdsctl("state", "import", str(document), "--dry-run")
        assert tried.returncode == 1 and "export with --include-secrets" in tried.stderr
        refused = other.xdsctl("state", "import", str(document))
        assert refused.returncode == 1
        assert "export with --include-secrets" in refused.stderr
        assert other.xdsctl("hooks", "list", "-o", "json").json() == []
        full = tmp_path / "full.json"
        full.write_text(json.dumps(with_secrets))
        _ok(other.xdsctl("state", "import", str(full)))
        assert other.xdsctl("hooks", "list", "-o", "json").json()[0]["signed"] is True
    finally:
        other.stop()
    tested = server.xdsctl("hooks", "test", "rx")
    _ok(tested)
    assert receiver.delivered()[-1].signed_by(SECRET)


def test_a_nack_is_an_event(server: ServerProcess, receiver: Receiver, tmp_path: Path) -> None:
    """A scripted node refuses the clusters: one fleet.nack with its node, type and error."""
    _ok(server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"))
    _add_webhook(server, receiver, tmp_path, "--events", "fleet.nack")

    async def refuse() -> None:
        async with ScriptedAdsClient(server.xds_address, "nacker") as client:
            await client.request(CLUSTER)
            received = await client.receive()
            await client.request(
                CLUSTER, version="", nonce=received.nonce, error="no such thing (scripted)"
            )
            await asyncio.sleep(1.0)

    asyncio.run(refuse())
    event = receiver.wait_for(1)[0].event
    assert event["type"] == "fleet.nack" and event["service"] is None
    assert event["data"]["node"] == "nacker" and event["data"]["type"] == CLUSTER
    assert "no such thing (scripted)" in event["data"]["error"]
    assert event["revision"] is None and event["actor"] == "nacker"


def _exec_hook(command: list[str], timeout_s: float = 2.0) -> Hook:
    return Hook(
        name="x",
        events=("*",),
        timeout_s=timeout_s,
        created_at="t",
        created_by="t",
        command=tuple(command),
    )


def _send(hook: Hook) -> tuple[Outcome, float]:
    async def attempt() -> Outcome:
        async with httpx.AsyncClient() as client:
            return await send(hook, "e1", "hook.test", b'{"type": "hook.test"}', client)

    started = time.monotonic()
    outcome = asyncio.run(attempt())
    return outcome, time.monotonic() - started


def test_an_exec_attempt_ends_with_the_command_whatever_it_leaves(tmp_path: Path) -> None:
    """A child left in the group is killed once the command exits; one that left the
    group (setsid) and holds the output does not hold the attempt; the output is kept."""
    left = tmp_path / "left.pid"
    command = f"sleep 300 & echo $! > {left}; setsid sleep 300 & echo started; exit 0"
    outcome, took = _send(_exec_hook(["sh", "-c", command]))
    assert outcome == Outcome(True, "exit 0", "started\n") and took < 2.0
    pid = int(left.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid):
        assert time.monotonic() < deadline, "the child left in the group still runs"
        time.sleep(0.05)

    # At the timeout, promptly, even with a detached child holding the output file.
    outcome, took = _send(_exec_hook(["sh", "-c", "setsid sleep 300 & sleep 100"], 1.0))
    assert outcome.status == "timeout after 1s (process group killed)" and took < 3.0


def test_an_attempt_never_raises_and_secrets_stay_out_of_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    outcome, _took = _send(_exec_hook(["bad\x00name"]))
    assert not outcome.delivered and outcome.status == "ValueError"
    outcome, _took = _send(_exec_hook(["/nonexistent/hook"]))
    assert outcome.status == "not started" and "No such file" in outcome.response
    monkeypatch.setenv("PGPASSWORD", "pg-secret")
    monkeypatch.setenv("XDSCTL_TOKEN", "xdst_secret")
    monkeypatch.setenv("KUBECONFIG", "/etc/kube/config")
    shown = 'echo "[$PGPASSWORD][$XDSCTL_TOKEN][$KUBECONFIG][$XDS_EVENT][$XDS_DELIVERY]"'
    outcome, _took = _send(_exec_hook(["sh", "-c", shown]))
    assert outcome == Outcome(True, "exit 0", "[][][/etc/kube/config][hook.test][e1]\n")
