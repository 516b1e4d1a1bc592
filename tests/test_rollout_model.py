"""Rollouts as pure transitions: steps, verdicts on the numbers, no data, gates, aborts,
and the operations that commit them (revisions with reasons, the manual-change guard)."""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import pytest

from xds_server.errors import InvalidRequest, NotFound, PreconditionFailed
from xds_server.model import operations as ops
from xds_server.model import rollout as ro
from xds_server.model.names import parse_endpoint
from xds_server.model.rollout_document import rollout_from_document, rollout_to_document
from xds_server.model.state import Mirror, World


def ro_mirror(tag: str) -> Mirror:
    return Mirror(tag=tag, hundredths=500)


HEALTHY = ro.Figures(requests=500, error_rate=0.001, p99_ms=20.0, complete=True)
FAILING = ro.Figures(requests=500, error_rate=0.12, p99_ms=20.0, complete=True)
QUIET = ro.Figures(requests=3, error_rate=0.0, p99_ms=5.0, complete=True)
GAPPY = ro.Figures(requests=500, error_rate=0.0, p99_ms=5.0, complete=False)


def spec(**changes: Any) -> ro.RolloutSpec:
    base = ro.RolloutSpec(
        stable="blue",
        canary="green",
        steps=(5, 25, None, 50, 100),
        interval_s=10,
        max_error_rate=ro.parse_error_rate("1%"),
        max_p99=ro.parse_latency("300ms"),
        min_requests=100,
        failure_limit=1,
        no_data_timeout_s=30,
    )
    return ro.check_spec(dataclasses.replace(base, **changes))


class Driven:
    """A world with blue serving and green bound at 0, and a clock for the rollout."""

    def __init__(self) -> None:
        counter = itertools.count(1)
        self.clock = 1000.0
        self._ids = lambda: f"c{next(counter):024d}"
        self.world = World()
        self.history: list[Any] = []
        for tag in ("blue", "green"):
            self._run(
                ops.apply_deployment(
                    self.world,
                    self.ctx(),
                    service="default",
                    endpoints=[parse_endpoint("10.0.0.1:80")],
                    deployment_tag=tag,
                )
            )

    def ctx(self, command: str = "test") -> ops.Context:
        return ops.Context("tester", "2026-01-01T00:00:00Z", command, self._ids, self.clock)

    def _run(self, change: ops.Change[Any]) -> Any:
        self.world = change.world
        self.history.extend(change.history)
        return change.result

    def start(self, **changes: Any) -> ops.RolloutResult:
        return self._run(
            ops.start_rollout(self.world, self.ctx(), service="default", spec=spec(**changes))
        )

    def judge(self, canary: ro.Figures, stable: ro.Figures | None = HEALTHY) -> ro.Rollout:
        rollout = self.rollout
        self.clock = rollout.next_check_at
        expected = (rollout.step, rollout.next_check_at)
        change = ops.judge_rollout(
            self.world, self.ctx(), service="default", expected=expected, canary=canary,
            stable=stable,
        )  # fmt: skip
        return self._run(change).rollout  # type: ignore[no-any-return]

    def step(self, transition: Any) -> ops.RolloutResult:
        return self._run(
            ops.step_rollout(
                self.world, self.ctx(), service="default", step=lambda r: transition(r, self.clock)
            )
        )

    @property
    def rollout(self) -> ro.Rollout:
        rollout = self.world.services["default"].rollout
        assert rollout is not None
        return rollout

    def weights(self) -> dict[str, int]:
        return dict(self.world.services["default"].policy.weights)


@pytest.fixture
def d() -> Driven:
    return Driven()


def test_a_healthy_canary_walks_every_step_with_a_revision_each(d: Driven) -> None:
    started = d.start()
    assert d.weights() == {"blue": 95, "green": 5}
    assert started.rollout.phase is ro.Phase.PROGRESSING
    d.judge(HEALTHY)
    assert d.weights() == {"blue": 75, "green": 25}
    assert d.judge(HEALTHY).phase is ro.Phase.PAUSED  # the manual gate: no traffic change
    assert d.weights() == {"blue": 75, "green": 25}
    d.step(lambda r, now: ro.promote(r, False, now))
    assert d.weights() == {"blue": 50, "green": 50}
    done = d.judge(HEALTHY)
    assert done.phase is ro.Phase.COMPLETED and d.weights() == {"blue": 0, "green": 100}
    reasons = [entry.reason for entry in d.history if entry.reason]
    assert len(reasons) == 4  # 5%, 25%, 50%, 100%: the gate made no revision
    assert "step 2/5: green at 25%" in reasons[1] and "error rate 0.10%" in reasons[1]


def test_errors_abort_at_once_back_to_stable_and_say_why(d: Driven) -> None:
    d._run(
        ops.set_traffic(
            d.world, d.ctx(), service="default", weights=[("blue", 100), ("green", 0)],
            mirrors=[ro_mirror("green")],
        )
    )  # fmt: skip
    d.start()
    assert d.world.services["default"].policy.mirrors  # steps keep a mirror that still shadows
    d.judge(HEALTHY)
    aborted = d.judge(FAILING)
    assert aborted.phase is ro.Phase.ABORTED and aborted.abort_cause == "bounds"
    assert d.weights() == {"blue": 100, "green": 0}  # green stays bound, at 0
    assert not d.world.services["default"].policy.mirrors  # an abort clears them
    assert dict(d.world.bindings_of("default")).keys() == {"blue", "green"}
    assert "error rate 12.00% > 1.00%" in d.history[-1].reason
    assert aborted.verdicts[-1].outcome == "fail"
    with pytest.raises(PreconditionFailed, match="no rollout is running to abort"):
        d.step(lambda r, now: ro.abort(r, "again", now))


def test_failure_limit_forgives_a_blip(d: Driven) -> None:
    d.start(failure_limit=2)
    assert d.judge(FAILING).phase is ro.Phase.PROGRESSING
    assert d.weights() == {"blue": 95, "green": 5}
    assert d.judge(HEALTHY).failures == 0  # passed: on to 25
    assert d.weights()["green"] == 25


def test_no_data_holds_then_aborts_after_the_timeout(d: Driven) -> None:
    d.start()
    assert d.judge(QUIET).phase is ro.Phase.HOLDING
    assert d.judge(GAPPY).phase is ro.Phase.HOLDING  # a missing report is no data too
    assert d.weights()["green"] == 5  # never passed
    aborted = d.judge(QUIET)
    assert aborted.phase is ro.Phase.ABORTED and aborted.abort_cause == "no_data"
    assert "no data for 30s" in aborted.reason


def test_no_data_then_data_resumes_progress(d: Driven) -> None:
    d.start()
    d.judge(QUIET)
    assert d.judge(HEALTHY).phase is ro.Phase.PROGRESSING
    assert d.weights()["green"] == 25 and d.rollout.no_data_since is None


def test_relative_bounds_follow_the_stable_tag(d: Driven) -> None:
    d.start(max_error_rate=ro.parse_error_rate("+0.5%"), max_p99=None)
    noisy = ro.Figures(500, 0.02, 10.0, True)
    assert d.judge(ro.Figures(500, 0.024, 10.0, True), stable=noisy).phase is ro.Phase.PROGRESSING
    assert d.judge(ro.Figures(500, 0.03, 10.0, True), stable=noisy).phase is ro.Phase.ABORTED


def test_pause_resume_and_promote_full(d: Driven) -> None:
    d.start()
    d.step(ro.pause)
    assert d.rollout.phase is ro.Phase.PAUSED
    with pytest.raises(PreconditionFailed, match="paused already"):
        d.step(ro.pause)
    d.step(ro.resume)
    assert d.weights() == {"blue": 95, "green": 5}
    with pytest.raises(PreconditionFailed, match="not at a manual gate"):
        d.step(lambda r, now: ro.promote(r, False, now))
    d.step(lambda r, now: ro.promote(r, True, now))
    assert d.rollout.phase is ro.Phase.COMPLETED and d.weights()["green"] == 100


def test_a_running_rollout_refuses_manual_changes_unless_forced(d: Driven) -> None:
    d.start()
    before = d.world
    with pytest.raises(PreconditionFailed, match=r"pause it .* or abort it .* or pass --force"):
        ops.promote(d.world, d.ctx(), service="default")
    assert d.world is before
    d._run(ops.promote(d.world, d.ctx("traffic promote --force"), service="default", force=True))
    assert d.rollout.phase is ro.Phase.ABORTED and d.rollout.abort_cause == "force"
    assert "aborted by --force, for `traffic promote --force`" in d.history[-2].reason
    assert d.weights() == {"blue": 0, "green": 100}


def test_a_second_rollout_and_bad_targets_are_refused(d: Driven) -> None:
    d.start()
    with pytest.raises(PreconditionFailed, match="one at a time"):
        d.start()
    fresh = Driven()
    with pytest.raises(PreconditionFailed, match="no deployment of service default holds tag red"):
        fresh.start(canary="red")
    with pytest.raises(InvalidRequest, match="is the serving tag already"):
        fresh.start(canary="blue")
    with pytest.raises(NotFound, match="has had no rollout"):
        ops.rollout_of(fresh.world, "default")


def test_a_stale_judgement_is_refused(d: Driven) -> None:
    d.start()
    rollout = d.rollout
    d.judge(HEALTHY)
    d.clock = rollout.next_check_at + 100
    with pytest.raises(PreconditionFailed, match="moved on"):
        ops.judge_rollout(
            d.world, d.ctx(), service="default", expected=(rollout.step, rollout.next_check_at),
            canary=HEALTHY, stable=HEALTHY,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("5,25,50", "must end at 100"),
        ("25,5,100", "must ascend"),
        ("0,50,100", "from 1 to 100"),
        ("pause,50,100", "cannot start with pause"),
        ("5,pause,pause,100", "two pauses in a row"),
        ("5,ten,100", "neither a percentage nor pause"),
    ],
)
def test_bad_steps(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        ro.parse_steps(text)


@pytest.mark.parametrize("text", ["1", "1 %", "-1%", "101%", "abc"])
def test_bad_error_rates(text: str) -> None:
    with pytest.raises(InvalidRequest, match="not a percentage"):
        ro.parse_error_rate(text)


def test_bounds_parse() -> None:
    assert ro.parse_error_rate("0.5%") == ro.Bound(0.005, False, "0.5%")
    assert ro.parse_error_rate("+0.5%").relative
    assert ro.parse_latency("300ms") == ro.Bound(300.0, False, "300ms")
    with pytest.raises(InvalidRequest, match="not a latency"):
        ro.parse_latency("0.3s")


def test_short_intervals_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="--interval must be at least 1s"):
        spec(interval_s=0.5)


def test_a_rollout_survives_its_document(d: Driven) -> None:
    d.start()
    d.judge(QUIET)
    d.judge(HEALTHY)
    rollout = d.rollout
    assert rollout_from_document(json.loads(json.dumps(rollout_to_document(rollout)))) == rollout


def test_a_single_step_of_100_completes_at_once(d: Driven) -> None:
    done = d.start(steps=(100,)).rollout
    assert done.phase is ro.Phase.COMPLETED and d.weights() == {"blue": 0, "green": 100}
    assert not ro.due(done, d.clock + 1000)  # nothing left for the driver


def test_a_manual_change_ends_a_paused_rollout_where_traffic_is(d: Driven) -> None:
    d.start()
    d.step(ro.pause)
    revision = d.world.services["default"].revision
    d._run(ops.promote(d.world, d.ctx("traffic promote"), service="default"))
    assert d.world.services["default"].revision == revision + 1  # the promote only
    assert d.rollout.phase is ro.Phase.ABORTED and d.rollout.abort_cause == "manual"
    assert "ended by a manual change while paused: `traffic promote`" in d.rollout.reason
    assert d.weights() == {"blue": 0, "green": 100}  # the operator's, not undone
    with pytest.raises(PreconditionFailed, match="no rollout is running to resume"):
        d.step(ro.resume)


def test_apply_cannot_swap_a_rollout_tag_build(d: Driven) -> None:
    d.start()
    d.judge(HEALTHY)
    before = d.world
    for kwargs in ({"bluegreen": True}, {"deployment_tag": "blue"}):
        with pytest.raises(PreconditionFailed, match="of the rollout running on service default"):
            ops.apply_deployment(
                d.world, d.ctx(), service="default", endpoints=[parse_endpoint("10.0.0.2:80")],
                **kwargs,
            )  # fmt: skip
    assert d.world is before
    d._run(
        ops.apply_deployment(
            d.world, d.ctx(), service="default", endpoints=[parse_endpoint("10.0.0.3:80")],
            deployment_tag="grey",
        )
    )  # fmt: skip
    assert d.rollout.running


def test_resume_forgets_the_time_without_data_before_the_pause(d: Driven) -> None:
    d.start()
    d.judge(QUIET)
    d.step(ro.pause)
    d.clock += 3600
    d.step(ro.resume)
    assert d.rollout.no_data_since is None
    assert d.judge(QUIET).phase is ro.Phase.HOLDING  # a fresh count, not an hour of it


def test_pausing_at_a_gate_names_promote(d: Driven) -> None:
    d.start()
    d.judge(HEALTHY)
    d.judge(HEALTHY)  # now at the gate
    with pytest.raises(PreconditionFailed, match="pass the gate with `xdsctl rollout promote`"):
        d.step(ro.pause)


def test_intervals_beyond_the_windows_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="--interval must be at most 300s"):
        spec(interval_s=600)
