"""Rollout requests of the operator API into the model's spec and transitions."""

from __future__ import annotations

from collections.abc import Callable

from xds_server.errors import InvalidRequest
from xds_server.model import rollout as ro
from xds_server.v1 import operator_pb2 as pb

DEFAULT_NO_DATA_TIMEOUT_SECONDS = 300.0
DEFAULT_MIN_REQUESTS = 100
DEFAULT_FAILURE_LIMIT = 1

Action = Callable[[ro.Rollout, float], ro.Transition]


def rollout_spec(request: pb.StartRolloutRequest) -> ro.RolloutSpec:
    """The spec a request asks for (the stable tag is the service's serving tag, filled
    in by the operation). Every problem is one refusal."""
    problems: list[str] = []

    def checked(parse: Callable[[str], ro.Bound], text: str) -> ro.Bound | None:
        if not text:
            return None
        try:
            return parse(text)
        except InvalidRequest as error:
            problems.extend(error.problems)
            return None

    if not request.to_tag:
        problems.append("--to TAG is required: the tag to roll out, e.g. --to green")
    steps: tuple[int | None, ...] = ()
    try:
        steps = ro.parse_steps(",".join(request.steps))
    except InvalidRequest as error:
        problems.extend(error.problems)
    error_rate = checked(ro.parse_error_rate, request.max_error_rate)
    p99 = checked(ro.parse_latency, request.max_p99)
    if problems:
        raise InvalidRequest(problems)
    return ro.RolloutSpec(
        stable="",
        canary=request.to_tag,
        steps=steps,
        interval_s=request.interval_seconds,
        max_error_rate=error_rate,
        max_p99=p99,
        min_requests=(
            request.min_requests if request.HasField("min_requests") else DEFAULT_MIN_REQUESTS
        ),
        failure_limit=(
            request.failure_limit if request.HasField("failure_limit") else DEFAULT_FAILURE_LIMIT
        ),
        no_data_timeout_s=request.no_data_timeout_seconds or DEFAULT_NO_DATA_TIMEOUT_SECONDS,
    )


def rollout_action(request: pb.ChangeRolloutRequest, command: str) -> Action:
    """The transition ``pause``, ``resume``, ``abort`` or ``promote`` names."""
    if request.action == "pause":
        return ro.pause
    if request.action == "resume":
        return ro.resume
    if request.action == "promote":
        return lambda rollout, now: ro.promote(rollout, request.full, now)
    if request.action == "abort":
        why = request.reason or "no reason given"
        return lambda rollout, now: ro.abort(rollout, f"aborted by the operator: {why}", now)
    raise InvalidRequest(
        f"rollout action {request.action!r} is not one of pause, resume, abort, promote"
    )
