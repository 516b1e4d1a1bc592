"""Rollouts through `xdsctl serve` and a real Envoy, judged on its stats sink (SotW,
intervals of 1 to 2 s): they advance while green is healthy, abort the moment it is not,
hold on no data, wait at gates, and survive a kill -9 of the control plane."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import XDSCTL
from tests.support.stack import PacedLoad, Stack, blue_green_stack, wait_until

RATE = 60  # requests per second of client load


@pytest.fixture
def rollout_stack(tmp_path: Path) -> Iterator[Stack]:
    """Server, one Envoy, blue serving 100 and green bound at 0."""
    stack = blue_green_stack(tmp_path)
    try:
        yield stack
    finally:
        stack.close()


def _start(stack: Stack, *args: str) -> dict[str, Any]:
    return stack.xdsctl("rollout", "start", "--to", "green", *args, "-o", "json").json()


def _status(stack: Stack) -> dict[str, Any]:
    return stack.xdsctl("rollout", "status", "-o", "json").json()


def _phase(stack: Stack, phase: str) -> dict[str, Any] | None:
    status = _status(stack)
    return status if status["phase"] == phase else None


def _history(stack: Stack) -> list[dict[str, Any]]:
    return stack.xdsctl("traffic", "history", "-o", "json").json()


def _watch(stack: Stack, *args: str) -> subprocess.Popen[str]:
    assert stack.server is not None
    command = [*XDSCTL, "--server", stack.server.address, *args, "--watch", "-o", "json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _lines_until(watcher: subprocess.Popen[str], done: Any) -> list[dict[str, Any]]:
    """The watcher's JSON lines until ``done(line)``; then it is stopped."""
    assert watcher.stdout is not None
    lines: list[dict[str, Any]] = []
    try:
        while not lines or not done(lines[-1]):
            lines.append(json.loads(watcher.stdout.readline()))
    finally:
        watcher.terminate()
        watcher.wait(timeout=10)
    return lines


def _green(traffic: dict[str, Any]) -> int:
    return next(int(t["weight"]) for t in traffic["tags"] if t["tag"] == "green")


def test_a_healthy_canary_completes_every_step(rollout_stack: Stack) -> None:
    stack = rollout_stack
    traffic_watch = _watch(stack, "traffic", "get")
    with PacedLoad(stack.listen_port, RATE) as load:
        started = _start(
            stack, "--steps", "20,50,100", "--interval", "2s", "--min-requests", "10",
            "--max-error-rate", "1%", "--max-p99", "500ms",
        )  # fmt: skip
        assert started["phase"] == "progressing" and started["weights"] == {"blue": 80, "green": 20}
        watched = _lines_until(
            _watch(stack, "rollout", "status"), lambda r: r["phase"] == "completed"
        )
        done = _status(stack)
    assert done["weights"] == {"blue": 0, "green": 100}
    # Two passes, no failure; an interval whose reports were still arriving holds (no data).
    outcomes = [v["outcome"] for v in done["verdicts"]]
    assert [o for o in outcomes if o != "no_data"] == ["pass", "pass"], outcomes
    steps = [e for e in _history(stack) if e.get("reason")]
    assert [e["after"]["weights"]["green"] for e in reversed(steps)] == [20, 50, 100]
    assert "passed" in steps[0]["reason"] and "error rate" in steps[0]["reason"]
    assert set(load.counts()) <= {"blue", "green"}, load.counts()
    stack.wait_all("green")
    assert stack.server is not None
    assert stack.server.metric("xds_rollout_phase", service="default", phase="completed") == 1
    assert stack.server.metric("xds_rollout_step", service="default") == 0  # none running
    # --watch streamed every step as it happened, each update once.
    assert [line["step"] for line in watched] == sorted(line["step"] for line in watched)
    assert {line["weights"]["green"] for line in watched} >= {50, 100}
    shares = _lines_until(traffic_watch, lambda line: _green(line) == 100)
    greens = [_green(line) for line in shares]
    assert greens == sorted(set(greens)) and greens[-1] == 100, greens


def test_errors_abort_within_an_interval_and_say_why(rollout_stack: Stack) -> None:
    stack = rollout_stack
    green = stack.upstreams["green"]
    with PacedLoad(stack.listen_port, RATE) as load:
        _start(stack, "--steps", "10,50,70,90,100", "--interval", "2s", "--min-requests", "5",
               "--max-error-rate", "5%")  # fmt: skip
        wait_until(lambda: _status(stack)["step"] == 2, timeout=15, what="step 2")
        green.fail_every = 2  # half of green's requests fail from now on
        onset = time.monotonic()
        aborted = wait_until(lambda: _phase(stack, "aborted"), timeout=15, what="aborted")
        took = time.monotonic() - onset
        stack.wait_all("blue")
    assert took <= 2 * 2 + 3, took  # one interval, plus the one under way, plus a flush
    assert aborted["weights"] == {"blue": 100, "green": 0}
    assert "error rate" in aborted["reason"] and "> 5.00%" in aborted["reason"]
    assert aborted["verdicts"][-1]["outcome"] == "fail"
    # Judged on the first interval that saw the errors: step 2, or 3 when they began
    # just before step 2's judgement.
    assert aborted["step"] in (2, 3), aborted
    assert f"aborted at step {aborted['step']}/5" in _history(stack)[0]["reason"]
    # Only green's own 500s reached clients: no routing error while weights moved.
    assert set(load.counts()) <= {"blue", "green", "500"}, load.counts()
    assert stack.server is not None
    assert stack.server.metric("xds_rollout_aborts_total", service="default", reason="bounds") == 1
    # The canary is left in place, at weight 0, for inspection.
    deployments = stack.xdsctl("deployments", "list", "-o", "json").json()
    assert {d["tag"]: d["state"] for d in deployments} == {"blue": "active", "green": "active"}


def test_no_traffic_holds_then_aborts(rollout_stack: Stack) -> None:
    stack = rollout_stack
    _start(stack, "--steps", "10,100", "--interval", "1s", "--no-data-timeout", "3s")
    wait_until(lambda: _phase(stack, "holding"), timeout=10, what="holding on no data")
    aborted = wait_until(lambda: _phase(stack, "aborted"), timeout=15, what="aborted")
    assert "no data for 3s" in aborted["reason"]
    assert aborted["weights"] == {"blue": 100, "green": 0}


def test_gates_pause_resume_full_and_refusals(rollout_stack: Stack) -> None:
    stack = rollout_stack
    assert stack.server is not None
    refused = stack.server.xdsctl("rollout", "abort")
    assert refused.returncode == 1 and "has no rollout" in refused.stderr
    with PacedLoad(stack.listen_port, RATE):
        _start(
            stack, "--steps", "10,pause,20,30,40,50,60,100", "--interval", "1s",
            "--min-requests", "5",
        )  # fmt: skip
        gate = wait_until(lambda: _phase(stack, "paused"), timeout=15, what="at the gate")
        assert gate["step"] == 2 and gate["weights"]["green"] == 10
        time.sleep(2.5)  # a gate waits for the operator, however long
        assert _status(stack)["phase"] == "paused"
        stack.xdsctl("rollout", "promote")
        wait_until(lambda: _status(stack)["weights"].get("green") == 20, what="past the gate")
        stack.xdsctl("rollout", "pause")
        assert _status(stack)["phase"] == "paused"
        # A transition that moves no traffic makes no revision, but is logged with its reason.
        logged = stack.server.log_events("rollout.transition")[-1]
        assert (logged["phase"], logged["method"]) == ("paused", "ChangeRollout")
        assert "paused by the operator" in logged["reason"]
        resume = stack.server.xdsctl("rollout", "resume")
        assert resume.returncode == 0, resume.stderr
        moving = stack.server.xdsctl("traffic", "promote")
        assert moving.returncode == 1 and "--force" in moving.stderr
        stack.xdsctl("rollout", "promote", "--full")
    done = _status(stack)
    assert done["phase"] == "completed" and done["weights"] == {"blue": 0, "green": 100}
    again = stack.server.xdsctl("rollout", "pause")
    assert again.returncode == 1 and "no rollout is running" in again.stderr
    bad = stack.server.xdsctl("rollout", "start", "--to", "blue", "--steps", "50,10")
    assert bad.returncode == 1 and "must ascend" in bad.stderr
    # Paused, hands are free: a manual change ends the rollout where the operator put it.
    stack.xdsctl("rollout", "start", "--to", "blue", "--steps", "10,100", "--interval", "60s")
    stack.xdsctl("rollout", "pause")
    manual = stack.server.xdsctl("traffic", "set", "--tags", "blue=30,green=70")
    assert manual.returncode == 0, manual.stderr
    ended = _status(stack)
    assert ended["phase"] == "aborted" and "ended by a manual change" in ended["reason"]
    assert ended["weights"] == {"blue": 30, "green": 70}


def test_a_killed_control_plane_resumes_at_the_same_step(rollout_stack: Stack) -> None:
    stack = rollout_stack
    server = stack.server
    assert server is not None
    with PacedLoad(stack.listen_port, RATE):
        _start(stack, "--steps", "10,30,60,100", "--interval", "2s", "--min-requests", "5")
        wait_until(lambda: _status(stack)["step"] == 2, timeout=15, what="step 2")
        assert server.signal(signal.SIGKILL) != 0
        server.start()
        assert _status(stack)["step"] == 2  # where it was, not restarted
        done = wait_until(lambda: _phase(stack, "completed"), timeout=40, what="completed")
    greens = [e["after"]["weights"]["green"] for e in reversed(_history(stack)) if e.get("reason")]
    assert greens == [10, 30, 60, 100], json.dumps(done)  # no step twice, none skipped
