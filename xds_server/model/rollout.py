"""Rollouts: a canary's share moved up step by step while it is healthy, back at once when
it is not. Pure: the spec, the state, and each transition as a function of them, the
figures measured and the time, all given by the caller.

A step is one traffic change (the canary at p %, the stable tag at 100 - p). After each
interval the canary's window is judged: enough requests and within the bounds passes
and advances; outside is a failure, and ``failure_limit`` failures in a row abort.
Too few requests or a missing Envoy report is no data: the step holds, never passes,
and after ``no_data_timeout`` of it the rollout aborts.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from xds_server.errors import InvalidRequest, PreconditionFailed

PAUSE = "pause"
# The rollout's own record keeps this many verdicts and events, newest last.
KEPT_VERDICTS = 20
KEPT_EVENTS = 50
MIN_INTERVAL_SECONDS = 1.0
# A step is judged on one interval of the traffic windows, which keep 300 s.
MAX_INTERVAL_SECONDS = 300.0

_PERCENT = re.compile(r"(\+)?([0-9]{1,3}(?:\.[0-9]{1,4})?)%")
_MILLIS = re.compile(r"(\+)?([0-9]{1,7}(?:\.[0-9]{1,3})?)ms")


class Phase(StrEnum):
    PROGRESSING = "progressing"
    PAUSED = "paused"
    HOLDING = "holding"  # judged: no data; the step holds
    ABORTED = "aborted"
    COMPLETED = "completed"


RUNNING = frozenset({Phase.PROGRESSING, Phase.PAUSED, Phase.HOLDING})


@dataclass(frozen=True, slots=True)
class Bound:
    """A limit on a canary figure: absolute, or ``relative`` to the stable tag's figure
    over the same interval (``+0.5%``: at most the stable's error rate plus 0.5 points)."""

    limit: float  # a fraction for error rates, milliseconds for latency
    relative: bool
    text: str  # as the operator wrote it


@dataclass(frozen=True, slots=True)
class RolloutSpec:
    """What ``rollout start`` asked for."""

    stable: str
    canary: str
    steps: tuple[int | None, ...]  # canary percentages; None is a manual gate
    interval_s: float
    max_error_rate: Bound | None = None
    max_p99: Bound | None = None
    min_requests: int = 100
    failure_limit: int = 1
    no_data_timeout_s: float = 300.0

    def describe(self, step: int) -> str:
        """``step 2/5`` as status and history say it."""
        return f"step {step + 1}/{len(self.steps)}"


@dataclass(frozen=True, slots=True)
class Figures:
    """One tag's real traffic over a judged interval, as the Envoys reported it."""

    requests: int
    error_rate: float | None
    p99_ms: float | None
    # Every Envoy that reports the tag sent every flush of the interval.
    complete: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judgement of a step: pass, fail or no data, with the numbers behind it."""

    at: float
    step: int
    outcome: str  # "pass" | "fail" | "no_data"
    canary: Figures
    stable: Figures | None
    detail: str


@dataclass(frozen=True, slots=True)
class RolloutEvent:
    """A transition the rollout made, with its reason (its own record, shown by status)."""

    at: float
    phase: Phase
    step: int
    reason: str


@dataclass(frozen=True, slots=True)
class Rollout:
    """A service's rollout: where it is, when the current step is judged, and why."""

    spec: RolloutSpec
    phase: Phase
    step: int  # index into spec.steps of the step in force
    started_at: float
    next_check_at: float  # wall clock: a restarted server counts from the stored time
    failures: int = 0  # consecutive
    no_data_since: float | None = None
    reason: str = ""
    verdicts: tuple[Verdict, ...] = ()
    events: tuple[RolloutEvent, ...] = ()
    # Why an aborted rollout stopped, as a metric label: bounds, no_data, operator, force.
    abort_cause: str = ""

    @property
    def running(self) -> bool:
        return self.phase in RUNNING

    @property
    def at_gate(self) -> bool:
        return self.spec.steps[self.step] is None

    @property
    def percent(self) -> int:
        """The canary's share in force: the last percentage at or before this step."""
        return next(p for p in reversed(self.spec.steps[: self.step + 1]) if p is not None)


@dataclass(frozen=True)
class Transition:
    """A rollout's next state, the canary share to apply (None: traffic stays), and why."""

    rollout: Rollout
    percent: int | None
    reason: str


# --- parsing what the operator typed ----------------------------------------------------


def parse_steps(text: str) -> tuple[int | None, ...]:
    """``5,25,pause,50,100``: ascending percentages from 1 to 100 ending at 100, with
    manual gates (``pause``) between them."""
    steps: list[int | None] = []
    for part in (p.strip() for p in text.split(",")):
        if part == PAUSE:
            steps.append(None)
        elif part.isascii() and part.isdigit() and len(part) <= 3:
            steps.append(int(part))
        else:
            raise InvalidRequest(
                f"--steps {text!r}: {part!r} is neither a percentage nor pause: "
                "write e.g. --steps 5,25,pause,50,100"
            )
    return check_steps(steps)


def check_steps(steps: Iterable[int | None]) -> tuple[int | None, ...]:
    """The steps' rules, for any client: see ``parse_steps``."""
    steps = tuple(steps)
    percents = [p for p in steps if p is not None]
    problems = []
    if not percents:
        problems.append("--steps needs percentages, e.g. --steps 5,25,50,100")
    if any(not 1 <= p <= 100 for p in percents):
        problems.append(f"--steps percentages must be from 1 to 100 (got {_steps_text(steps)})")
    if any(b <= a for a, b in itertools.pairwise(percents)):
        problems.append(f"--steps must ascend (got {_steps_text(steps)})")
    if percents and percents[-1] != 100:
        problems.append(f"--steps must end at 100 (got {_steps_text(steps)})")
    if steps and steps[0] is None:
        problems.append("--steps cannot start with pause: the first step moves traffic")
    if steps and steps[-1] is None:
        problems.append("--steps cannot end with pause: the last step is 100")
    if any(a is None and b is None for a, b in itertools.pairwise(steps)):
        problems.append("--steps has two pauses in a row: one gate is enough")
    if problems:
        raise InvalidRequest(problems)
    return steps


def _steps_text(steps: Iterable[int | None]) -> str:
    return ",".join(PAUSE if p is None else str(p) for p in steps)


def parse_error_rate(text: str) -> Bound:
    """``1%``, ``0.5%``, or ``+0.5%`` (relative to the stable tag)."""
    match = _PERCENT.fullmatch(text.strip())
    if match is None or float(match.group(2)) > 100:
        raise InvalidRequest(
            f"--max-error-rate {text!r} is not a percentage: write e.g. 1%, 0.5% or +0.5% "
            "(at most the stable tag's rate plus 0.5 points)"
        )
    return Bound(float(match.group(2)) / 100, bool(match.group(1)), text.strip())


def parse_latency(text: str) -> Bound:
    """``300ms``, or ``+50ms`` (relative to the stable tag's p99)."""
    match = _MILLIS.fullmatch(text.strip())
    if match is None:
        raise InvalidRequest(
            f"--max-p99 {text!r} is not a latency: write e.g. 300ms or +50ms "
            "(at most the stable tag's p99 plus 50 ms)"
        )
    return Bound(float(match.group(2)), bool(match.group(1)), text.strip())


def check_spec(spec: RolloutSpec) -> RolloutSpec:
    """Every rule a spec keeps, whichever client sent it."""
    check_steps(spec.steps)
    problems = []
    if not math.isfinite(spec.interval_s) or spec.interval_s < MIN_INTERVAL_SECONDS:
        problems.append(
            f"--interval must be at least {MIN_INTERVAL_SECONDS:g}s (Envoys report once a "
            f"second), got {spec.interval_s:g}s"
        )
    elif spec.interval_s > MAX_INTERVAL_SECONDS:
        problems.append(
            f"--interval must be at most {MAX_INTERVAL_SECONDS:g}s (the traffic windows "
            f"keep that much), got {spec.interval_s:g}s: use more steps instead"
        )
    if spec.min_requests < 1:
        problems.append(f"--min-requests must be at least 1 (got {spec.min_requests})")
    if spec.failure_limit < 1:
        problems.append(f"--failure-limit must be at least 1 (got {spec.failure_limit})")
    if not math.isfinite(spec.no_data_timeout_s) or spec.no_data_timeout_s < spec.interval_s:
        problems.append(
            f"--no-data-timeout must be at least one --interval ({spec.interval_s:g}s), "
            f"got {spec.no_data_timeout_s:g}s"
        )
    if spec.canary == spec.stable:
        problems.append(
            f"--to {spec.canary} is the serving tag already: roll out another tag, "
            "e.g. the one `xdsctl apply --bluegreen` just bound"
        )
    if problems:
        raise InvalidRequest(problems)
    return spec


# --- transitions ------------------------------------------------------------------------


def begin(spec: RolloutSpec, now: float) -> Transition:
    """The first step: the canary at the first percentage."""
    rollout = Rollout(
        spec=spec,
        phase=Phase.PROGRESSING,
        step=0,
        started_at=now,
        next_check_at=now + spec.interval_s,
    )
    reason = (
        f"rollout of {spec.canary} started: {spec.describe(0)}, {spec.canary} at {rollout.percent}%"
    )
    if rollout.percent == 100:  # --steps 100: nothing left to judge
        done = dataclasses.replace(rollout, phase=Phase.COMPLETED)
        return _moved(done, 100, f"{reason}; completed", now)
    return _moved(rollout, rollout.percent, reason, now)


def _next_check(rollout: Rollout, now: float) -> float:
    """One interval after the check just made, on the rollout's own schedule (the driver's
    tick adds no drift); a server that was down longer starts a fresh interval."""
    scheduled = rollout.next_check_at + rollout.spec.interval_s
    return scheduled if scheduled > now else now + rollout.spec.interval_s


def due(rollout: Rollout, now: float) -> bool:
    """Whether the current step's interval is over and it waits to be judged."""
    return rollout.phase in (Phase.PROGRESSING, Phase.HOLDING) and now >= rollout.next_check_at


def judge(rollout: Rollout, canary: Figures, stable: Figures | None, now: float) -> Transition:
    """Judge the interval that just ended: advance, count a failure, hold or abort."""
    spec = rollout.spec
    verdict, problems = _verdict(rollout, canary, stable, now)
    judged = dataclasses.replace(
        rollout,
        verdicts=(*rollout.verdicts, verdict)[-KEPT_VERDICTS:],
        next_check_at=_next_check(rollout, now),
    )
    where = spec.describe(rollout.step)
    if verdict.outcome == "no_data":
        since = (
            rollout.no_data_since if rollout.no_data_since is not None else now - spec.interval_s
        )
        if now - since >= spec.no_data_timeout_s:
            reason = (
                f"aborted: no data for {spec.no_data_timeout_s:g}s at {where} ({verdict.detail})"
            )
            return abort(judged, reason, now, cause="no_data")
        held = dataclasses.replace(judged, phase=Phase.HOLDING, no_data_since=since)
        if rollout.phase is Phase.HOLDING:
            return Transition(held, None, "")
        return _noted(held, f"holding at {where}: no data ({verdict.detail})", now)
    if verdict.outcome == "fail":
        failures = rollout.failures + 1
        failed = dataclasses.replace(
            judged, phase=Phase.PROGRESSING, failures=failures, no_data_since=None
        )
        if failures >= spec.failure_limit:
            reason = f"aborted at {where}: {'; '.join(problems)} ({verdict.detail})"
            return abort(failed, reason, now, cause="bounds")
        reason = (
            f"failure {failures}/{spec.failure_limit} at {where}: {'; '.join(problems)} "
            f"({verdict.detail}); judged again after the next interval"
        )
        return _noted(failed, reason, now)
    passed = dataclasses.replace(judged, failures=0, no_data_since=None)
    return _advance(passed, f"{where} passed ({verdict.detail})", now)


def _verdict(
    rollout: Rollout, canary: Figures, stable: Figures | None, now: float
) -> tuple[Verdict, list[str]]:
    spec = rollout.spec
    detail = _figures_text(spec.canary, canary)
    if stable is not None and stable.requests:
        detail += f"; {_figures_text(spec.stable, stable)}"

    def verdict(outcome: str, text: str = detail) -> Verdict:
        return Verdict(now, rollout.step, outcome, canary, stable, text)

    if not canary.complete:
        return verdict("no_data", f"Envoy reports missing; {detail}"), []
    if canary.requests < spec.min_requests:
        return verdict("no_data", f"{detail}, fewer than --min-requests {spec.min_requests}"), []
    problems = []
    for name, bound, value, base, shown in (
        ("error rate", spec.max_error_rate, canary.error_rate, _figure(stable, "error_rate"), _pct),
        ("p99", spec.max_p99, canary.p99_ms, _figure(stable, "p99_ms"), _ms),
    ):
        if bound is None:
            continue
        if value is None or (bound.relative and base is None):
            return verdict("no_data", f"no {name} to judge; {detail}"), []
        limit = bound.limit + (base or 0.0) if bound.relative else bound.limit
        if value > limit:
            against = f" (stable {shown(base)} {bound.text})" if bound.relative else ""
            problems.append(f"{name} {shown(value)} > {shown(limit)}{against}")
    return verdict("fail" if problems else "pass"), problems


def _figure(figures: Figures | None, name: str) -> float | None:
    if figures is None or not figures.complete or not figures.requests:
        return None
    value: float | None = getattr(figures, name)
    return value


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def _figures_text(tag: str, figures: Figures) -> str:
    return (
        f"{tag}: {figures.requests} requests, error rate {_pct(figures.error_rate)}, "
        f"p99 {_ms(figures.p99_ms)}"
    )


def _advance(rollout: Rollout, why: str, now: float) -> Transition:
    """To the next step: a gate pauses; a percentage moves traffic; 100 completes."""
    spec = rollout.spec
    step = rollout.step + 1
    moved = dataclasses.replace(rollout, step=step, phase=Phase.PROGRESSING)
    if moved.at_gate:
        paused = dataclasses.replace(moved, phase=Phase.PAUSED)
        reason = (
            f"{why}; paused at the manual gate ({spec.describe(step)}): pass it with "
            "`xdsctl rollout promote`"
        )
        return _noted(paused, reason, now)
    percent = moved.percent
    if percent == 100:
        done = dataclasses.replace(moved, phase=Phase.COMPLETED)
        return _moved(done, 100, f"{why}; completed: {spec.canary} at 100%", now)
    return _moved(moved, percent, f"{why}; {spec.describe(step)}: {spec.canary} at {percent}%", now)


def pause(rollout: Rollout, now: float) -> Transition:
    if rollout.phase is Phase.PAUSED:
        fix = (
            "pass the gate with `xdsctl rollout promote`"
            if rollout.at_gate
            else "resume it with `xdsctl rollout resume`"
        )
        raise PreconditionFailed(
            f"the rollout is paused already ({rollout.spec.describe(rollout.step)}): {fix}"
        )
    _require_running(rollout, "pause")
    paused = dataclasses.replace(rollout, phase=Phase.PAUSED)
    return _noted(paused, f"paused by the operator at {rollout.spec.describe(rollout.step)}", now)


def resume(rollout: Rollout, now: float) -> Transition:
    """Judge again from a fresh interval; the step's weights are set again."""
    _require_running(rollout, "resume")
    if rollout.phase is not Phase.PAUSED:
        raise PreconditionFailed(f"the rollout is {rollout.phase}, not paused: nothing to resume")
    if rollout.at_gate:
        raise PreconditionFailed(
            "the rollout waits at a manual gate: pass it with `xdsctl rollout promote`"
        )
    resumed = dataclasses.replace(
        rollout,
        phase=Phase.PROGRESSING,
        next_check_at=now + rollout.spec.interval_s,
        no_data_since=None,  # the pause is no time without data
    )
    reason = f"resumed by the operator at {rollout.spec.describe(rollout.step)}"
    return _moved(resumed, resumed.percent, reason, now)


def promote(rollout: Rollout, full: bool, now: float) -> Transition:
    """Pass the manual gate; ``full``: skip every remaining step to 100 %."""
    _require_running(rollout, "promote")
    if full:
        done = dataclasses.replace(rollout, step=len(rollout.spec.steps) - 1, phase=Phase.COMPLETED)
        reason = f"promoted in full by the operator: {rollout.spec.canary} at 100%"
        return _moved(done, 100, reason, now)
    if not rollout.at_gate:
        goes_on = (
            "it is paused: resume it with `xdsctl rollout resume`"
            if rollout.phase is Phase.PAUSED
            else "it advances by itself"
        )
        raise PreconditionFailed(
            f"the rollout is at {rollout.spec.describe(rollout.step)}, not at a manual gate: "
            f"{goes_on}; skip to 100% with `xdsctl rollout promote --full`"
        )
    fresh = dataclasses.replace(rollout, next_check_at=now + rollout.spec.interval_s)
    return _advance(fresh, "manual gate passed by the operator", now)


def abort(rollout: Rollout, reason: str, now: float, cause: str = "operator") -> Transition:
    """All traffic back to the stable tag in one change; the canary stays, at weight 0."""
    _require_running(rollout, "abort")
    stopped = dataclasses.replace(rollout, phase=Phase.ABORTED, reason=reason, abort_cause=cause)
    return _moved(stopped, 0, reason, now)


def ended_by_hand(rollout: Rollout, command: str, now: float) -> Transition:
    """A paused rollout the operator takes traffic back from: it ends where traffic is,
    without a change of its own (resuming would undo the operator's)."""
    reason = f"ended by a manual change while paused: `{command}`"
    stopped = dataclasses.replace(rollout, phase=Phase.ABORTED, reason=reason, abort_cause="manual")
    return _noted(stopped, reason, now)


def _require_running(rollout: Rollout, verb: str) -> None:
    if not rollout.running:
        raise PreconditionFailed(
            f"no rollout is running to {verb}: the last one is {rollout.phase} "
            f"({rollout.reason or 'no reason recorded'}); start one with `xdsctl rollout start`"
        )


def _noted(rollout: Rollout, reason: str, now: float) -> Transition:
    """A transition that moves no traffic: kept in the rollout's own record."""
    return _moved(rollout, None, reason, now)


def _moved(rollout: Rollout, percent: int | None, reason: str, now: float) -> Transition:
    event = RolloutEvent(now, rollout.phase, rollout.step, reason)
    recorded = dataclasses.replace(
        rollout,
        reason=reason,
        events=(*rollout.events, event)[-KEPT_EVENTS:],
    )
    return Transition(recorded, percent, reason)
