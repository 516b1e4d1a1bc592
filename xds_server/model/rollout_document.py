"""A rollout as a plain document (the store's column, state export) and back."""

from __future__ import annotations

from typing import Any

from xds_server.errors import InvalidRequest
from xds_server.model.rollout import (
    Bound,
    Figures,
    Phase,
    Rollout,
    RolloutEvent,
    RolloutSpec,
    Verdict,
    check_spec,
)


def _bound(bound: Bound | None) -> dict[str, Any] | None:
    if bound is None:
        return None
    return {"limit": bound.limit, "relative": bound.relative, "text": bound.text}


def _figures(figures: Figures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    return {
        "requests": figures.requests,
        "error_rate": figures.error_rate,
        "p99_ms": figures.p99_ms,
        "complete": figures.complete,
    }


def rollout_to_document(rollout: Rollout) -> dict[str, Any]:
    spec = rollout.spec
    return {
        "spec": {
            "stable": spec.stable,
            "canary": spec.canary,
            "steps": list(spec.steps),
            "interval_s": spec.interval_s,
            "max_error_rate": _bound(spec.max_error_rate),
            "max_p99": _bound(spec.max_p99),
            "min_requests": spec.min_requests,
            "failure_limit": spec.failure_limit,
            "no_data_timeout_s": spec.no_data_timeout_s,
        },
        "phase": rollout.phase.value,
        "step": rollout.step,
        "started_at": rollout.started_at,
        "next_check_at": rollout.next_check_at,
        "failures": rollout.failures,
        "no_data_since": rollout.no_data_since,
        "reason": rollout.reason,
        "abort_cause": rollout.abort_cause,
        "verdicts": [
            {
                "at": v.at,
                "step": v.step,
                "outcome": v.outcome,
                "canary": _figures(v.canary),
                "stable": _figures(v.stable),
                "detail": v.detail,
            }
            for v in rollout.verdicts
        ],
        "events": [
            {"at": e.at, "phase": e.phase.value, "step": e.step, "reason": e.reason}
            for e in rollout.events
        ],
    }


def _read_bound(data: dict[str, Any] | None) -> Bound | None:
    if data is None:
        return None
    return Bound(float(data["limit"]), bool(data["relative"]), str(data["text"]))


def _read_figures(data: dict[str, Any] | None) -> Figures | None:
    if data is None:
        return None
    return Figures(
        int(data["requests"]),
        None if data["error_rate"] is None else float(data["error_rate"]),
        None if data["p99_ms"] is None else float(data["p99_ms"]),
        bool(data["complete"]),
    )


def rollout_from_document(data: dict[str, Any]) -> Rollout:
    """The rollout a document describes; InvalidRequest naming what does not fit."""
    try:
        spec_data = data["spec"]
        spec = check_spec(
            RolloutSpec(
                stable=str(spec_data["stable"]),
                canary=str(spec_data["canary"]),
                steps=tuple(None if p is None else int(p) for p in spec_data["steps"]),
                interval_s=float(spec_data["interval_s"]),
                max_error_rate=_read_bound(spec_data["max_error_rate"]),
                max_p99=_read_bound(spec_data["max_p99"]),
                min_requests=int(spec_data["min_requests"]),
                failure_limit=int(spec_data["failure_limit"]),
                no_data_timeout_s=float(spec_data["no_data_timeout_s"]),
            )
        )
        step = int(data["step"])
        if not 0 <= step < len(spec.steps):
            raise InvalidRequest(f"rollout step {step} is not one of its {len(spec.steps)} steps")
        verdicts = []
        for v in data["verdicts"]:
            canary = _read_figures(v["canary"])
            if canary is None:
                raise InvalidRequest("a rollout verdict has no canary figures")
            verdicts.append(
                Verdict(
                    float(v["at"]),
                    int(v["step"]),
                    str(v["outcome"]),
                    canary,
                    _read_figures(v["stable"]),
                    str(v["detail"]),
                )
            )
        return Rollout(
            spec=spec,
            phase=Phase(data["phase"]),
            step=step,
            started_at=float(data["started_at"]),
            next_check_at=float(data["next_check_at"]),
            failures=int(data["failures"]),
            no_data_since=None if data["no_data_since"] is None else float(data["no_data_since"]),
            reason=str(data["reason"]),
            abort_cause=str(data.get("abort_cause", "")),
            verdicts=tuple(verdicts),
            events=tuple(
                RolloutEvent(float(e["at"]), Phase(e["phase"]), int(e["step"]), str(e["reason"]))
                for e in data["events"]
            ),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidRequest(f"the rollout record is not valid: {error!r}") from error
