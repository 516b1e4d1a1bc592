"""Rollouts through `xdsctl serve` and a real Envoy, judged on its stats sink (SotW,
intervals of 1 to 2 s): they advance while green is healthy, abort the moment it is not,
hold on no data, wait at gates, and survive a kill -9 of the control plane."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import Stack, wait_until


class Load:
    """Requests at a steady pace on one connection, every answer counted."""

    def __init__(self, stack: Stack, rate: int = 60) -> None:
        self._stack, self._rate = stack, rate
        self._stop = threading.Event()
        self.answers: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start, sent = time.monotonic(), 0
        while not self._stop.is_set():
            try:
                self.answers.update(self._stack.answers([{}] * 5))
            except OSError:
                self.answers["connection error"] += 5
            sent += 5
            self._stop.wait(max(0.0, start + sent / self._rate - time.monotonic()))

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def rollout_stack(tmp_path: Path) -> Iterator[Stack]:
    """Server, one Envoy, blue serving 100 and green bound at 0."""
    stack = Stack(workdir=tmp_path, delta=False)
    try:
        for tag in ("blue", "green"):
            stack.upstream(tag)
        stack.start_server()
        envoy = stack.start_envoy()
        wait_until(envoy.is_live, what="Envoy live")
        for tag in ("blue", "green"):
            endpoint = stack.upstreams[tag].endpoint
            stack.xdsctl("apply", "--deployment-tag", tag, "--endpoint", endpoint)
        stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0")
        stack.wait_all("blue")
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


def test_a_healthy_canary_completes_every_step(rollout_stack: Stack) -> None:
    stack = rollout_stack
    with Load(stack) as load:
        started = _start(
            stack, "--steps", "20,50,100", "--interval", "2s", "--min-requests", "10",
            "--max-error-rate", "1%", "--max-p99", "500ms",
        )  # fmt: skip
        assert started["phase"] == "progressing" and started["weights"] == {"blue": 80, "green": 20}
        done = wait_until(lambda: _phase(stack, "completed"), timeout=30, what="completed")
    assert done["weights"] == {"blue": 0, "green": 100}
    assert [v["outcome"] for v in done["verdicts"]] == ["pass", "pass"]
    steps = [e for e in _history(stack) if e.get("reason")]
    assert [e["after"]["weights"]["green"] for e in reversed(steps)] == [20, 50, 100]
    assert "passed" in steps[0]["reason"] and "error rate" in steps[0]["reason"]
    assert set(load.answers) <= {"blue", "green"}, load.answers
    stack.wait_all("green")


def test_errors_abort_within_an_interval_and_say_why(rollout_stack: Stack) -> None:
    stack = rollout_stack
    green = stack.upstreams["green"]
    with Load(stack) as load:
        _start(stack, "--steps", "10,50,100", "--interval", "2s", "--min-requests", "5",
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
    assert "aborted at step 2/3" in _history(stack)[0]["reason"]
    # Only green's own 500s reached clients: no routing error while weights moved.
    assert set(load.answers) <= {"blue", "green", "500"}, load.answers
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
    with Load(stack):
        _start(stack, "--steps", "10,pause,50,100", "--interval", "1s", "--min-requests", "5")
        gate = wait_until(lambda: _phase(stack, "paused"), timeout=15, what="at the gate")
        assert gate["step"] == 2 and gate["weights"]["green"] == 10
        time.sleep(2.5)  # a gate waits for the operator, however long
        assert _status(stack)["phase"] == "paused"
        manual = stack.server.xdsctl("traffic", "set", "--tags", "blue=100,green=0")
        assert manual.returncode == 0, manual.stderr  # paused: hands are free
        stack.xdsctl("rollout", "promote")
        wait_until(lambda: _status(stack)["weights"].get("green") == 50, what="past the gate")
        stack.xdsctl("rollout", "pause")
        assert _status(stack)["phase"] == "paused"
        resume = stack.server.xdsctl("rollout", "resume")
        assert resume.returncode == 0, resume.stderr
        moving = stack.server.xdsctl("traffic", "promote")
        assert moving.returncode == 1 and "--force" in moving.stderr
        stack.xdsctl("rollout", "promote", "--full")
    done = _status(stack)
    assert done["phase"] == "completed" and done["weights"] == {"blue": 0, "green": 100}
    again = stack.server.xdsctl("rollout", "pause")
    assert again.returncode == 1 and "no rollout is running" in again.stderr
    bad = stack.server.xdsctl("rollout", "start", "--to", "green", "--steps", "50,10")
    assert bad.returncode == 1 and "must ascend" in bad.stderr


def test_a_killed_control_plane_resumes_at_the_same_step(rollout_stack: Stack) -> None:
    stack = rollout_stack
    server = stack.server
    assert server is not None
    with Load(stack):
        _start(stack, "--steps", "10,30,60,100", "--interval", "2s", "--min-requests", "5")
        wait_until(lambda: _status(stack)["step"] == 2, timeout=15, what="step 2")
        assert server.signal(signal.SIGKILL) != 0
        server.start()
        assert _status(stack)["step"] == 2  # where it was, not restarted
        done = wait_until(lambda: _phase(stack, "completed"), timeout=40, what="completed")
    greens = [e["after"]["weights"]["green"] for e in reversed(_history(stack)) if e.get("reason")]
    assert greens == [10, 30, 60, 100], json.dumps(done)  # no step twice, none skipped
