"""Events derived from the worlds around a change, and the hook rules (pure)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.worlds import context
from xds_server.errors import InvalidRequest, NotFound, PreconditionFailed
from xds_server.model import operations as ops
from xds_server.model import rollout as ro
from xds_server.model.events import (
    EVENT_TYPES,
    change_events,
    hook_test_event,
    nack_event,
)
from xds_server.model.hooks import (
    MAX_RETRY_SECONDS,
    find_hook,
    gives_up,
    new_hook,
    parse_patterns,
    retry_after,
    validate_url,
    with_hook,
    without_hook,
)
from xds_server.model.names import parse_endpoint
from xds_server.model.state import World

CTX = context(actor="alice", command="cmd")


def _events(before: World, change: ops.Change[Any], actor: str = "alice") -> list[Any]:
    return change_events(
        before, change.world, [change.touched], change.history, actor, "2026-01-01T00:00:01Z"
    )


def _apply(world: World, **kwargs: Any) -> ops.Change[Any]:
    kwargs.setdefault("service", "default")
    return ops.apply_deployment(world, CTX, endpoints=[parse_endpoint("10.0.0.1:80")], **kwargs)


def _blue_green() -> World:
    world = _apply(World(), deployment_tag="blue").world
    return _apply(world, bluegreen=True).world


def test_a_first_apply_tells_the_whole_story_in_order() -> None:
    change = _apply(World(), deployment_tag="blue", labels=[("version", "v1")])
    events = _events(World(), change)
    assert [e.type for e in events] == [
        "service.changed",
        "deployment.applied",
        "traffic.changed",
        "deployment.scale",
    ]
    assert all(e.service == "default" and e.revision == 1 and e.actor == "alice" for e in events)
    scale = events[3]
    assert scale.data["desired"] == "running" and scale.data["labels"] == {"version": "v1"}
    assert set(scale.data) == {"deployment_id", "service", "tag", "endpoints", "labels", "desired"}
    assert (
        scale.data["endpoints"] == ["10.0.0.1:80"]
        and scale.deployment == scale.data["deployment_id"]
    )
    assert events[2].data["before"] == {"weights": {}, "mirrors": {}}
    assert events[2].data["after"] == {"weights": {"blue": 100}, "mirrors": {}}
    document = events[0].document("evt-1")
    assert list(document) == ["id", "type", "time", "service", "revision", "actor", "data"]
    json.dumps(document)  # plain JSON all the way down


def test_scale_follows_whether_envoy_may_route_to_the_deployment() -> None:
    world = _blue_green()
    green = world.deployments_of("default")[1]
    # Scaled down by leaving green out: stopped. Tagged again at 0 (listed): running.
    down = ops.set_traffic(world, CTX, service="default", weights=[("blue", 100)])
    events = _events(world, down)
    assert [(e.type, e.data.get("desired")) for e in events] == [
        ("traffic.changed", None),
        ("deployment.scale", "stopped"),
    ]
    assert events[1].deployment == green.id and events[1].data["tag"] == "green"
    up = ops.set_traffic(down.world, CTX, service="default", weights=[("blue", 100), ("green", 0)])
    assert [(e.type, e.data.get("desired")) for e in _events(down.world, up)] == [
        ("traffic.changed", None),
        ("deployment.scale", "running"),
    ]
    # Weights that move between running tags scale nothing.
    moved = ops.set_traffic(world, CTX, service="default", weights=[("blue", 50), ("green", 50)])
    assert [e.type for e in _events(world, moved)] == ["traffic.changed"]


def test_delete_and_service_settings() -> None:
    world = _blue_green()
    down = ops.set_traffic(world, CTX, service="default", weights=[("blue", 100)]).world
    green = down.deployments_of("default")[1]
    deleted = ops.delete_deployment(down, deployment_id=green.id)
    events = _events(down, deleted)
    assert [e.type for e in events] == ["deployment.deleted"]
    assert events[0].data["deployment"]["id"] == green.id and events[0].actor == "alice"
    domains = ops.set_domains(down, service="default", domains=["app.example.com"])
    (changed,) = _events(down, domains)
    assert changed.type == "service.changed" and changed.data["created"] is False
    assert changed.data["after"]["domains"] == ["app.example.com"]
    assert changed.data["before"]["domains"] == ["*"]


def _spec(steps: tuple[int | None, ...] = (10, None, 100)) -> ro.RolloutSpec:
    return ro.RolloutSpec(stable="blue", canary="green", steps=steps, interval_s=60)


def test_every_rollout_transition_is_an_event() -> None:
    world = _blue_green()
    started = ops.start_rollout(world, CTX, service="default", spec=_spec())
    events = _events(world, started)
    assert [e.type for e in events] == ["rollout.started", "traffic.changed"]
    assert events[0].data["rollout"]["percent"] == 10 and events[0].data["rollout"]["step"] == 1
    rollout = started.world.services["default"].rollout
    assert rollout is not None

    def moved(before: ro.Rollout, after: ro.Rollout) -> list[str]:
        base = started.world
        svc = base.services["default"]
        old = base.replace(services=[dataclasses.replace(svc, rollout=before)])
        new = base.replace(services=[dataclasses.replace(svc, rollout=after)])
        return [e.type for e in change_events(old, new, ["default"], (), "driver", "t")]

    stepped = dataclasses.replace(rollout, step=1)
    assert moved(rollout, stepped) == ["rollout.step"]
    paused = dataclasses.replace(rollout, phase=ro.Phase.PAUSED)
    assert moved(rollout, paused) == ["rollout.paused"]
    assert moved(paused, rollout) == ["rollout.resumed"]
    assert moved(paused, dataclasses.replace(rollout, step=2)) == ["rollout.step"]
    holding = dataclasses.replace(rollout, phase=ro.Phase.HOLDING)
    assert moved(rollout, holding) == ["rollout.holding"]
    assert moved(rollout, dataclasses.replace(rollout, phase=ro.Phase.ABORTED)) == [
        "rollout.aborted"
    ]
    assert moved(rollout, dataclasses.replace(rollout, phase=ro.Phase.COMPLETED)) == [
        "rollout.completed"
    ]
    # A verdict recorded, the next check moved: nothing to tell.
    assert moved(rollout, dataclasses.replace(rollout, next_check_at=99.0, failures=1)) == []


def test_events_of_other_kinds() -> None:
    nack = nack_event("envoy-1", "type.googleapis.com/x", "v3", "bad", "t")
    assert nack.document("e")["service"] is None and nack.actor == "envoy-1"
    assert hook_test_event("chat", "alice", "t").data == {"hook": "chat"}
    assert "hook.test" in EVENT_TYPES and "fleet.nack" in EVENT_TYPES


def test_patterns() -> None:
    assert parse_patterns(["traffic.*", " rollout.aborted", "traffic.*", ""]) == (
        "traffic.*",
        "rollout.aborted",
    )
    assert parse_patterns([]) == ("*",)
    with pytest.raises(InvalidRequest, match=re.escape("did you mean rollout.aborted")):
        parse_patterns(["rollout.abort"])
    hook = _hook(events=("rollout.*",))
    assert hook.wants("rollout.step") and not hook.wants("traffic.changed")


def _hook(**kwargs: Any) -> Any:
    fields: dict[str, Any] = {
        "name": "chat",
        "url": "https://hooks.example/x",
        "command": (),
        "secret": "",
        "events": ("*",),
        "timeout_s": 0,
        "created_at": "t",
        "created_by": "alice",
    }
    return new_hook(**{**fields, **kwargs})


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("hooks.example/x", "must be http or https (got no scheme)"),
        ("https://:80/x", "has no host"),
        ("https://a:b@hooks.example/x", "must not carry credentials"),
        ("https://hooks.example:99999/x", "does not parse"),
        ("https://hooks.example:0/x", "has port 0"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        validate_url(url)


def test_hook_rules() -> None:
    assert _hook().timeout_s == 5.0
    with pytest.raises(InvalidRequest, match="exclude each other"):
        _hook(command=("true",))
    with pytest.raises(InvalidRequest, match="needs --url URL"):
        _hook(url="")
    with pytest.raises(InvalidRequest, match="signs webhook bodies"):
        _hook(url="", command=("true",), secret="k")
    with pytest.raises(InvalidRequest, match="at most 300s"):
        _hook(timeout_s=301)
    with pytest.raises(InvalidRequest, match="NUL"):
        _hook(url="", command=("sh", "-c", "x\x00y"))
    hooks = with_hook((), _hook())
    with pytest.raises(PreconditionFailed, match="exists already"):
        with_hook(hooks, _hook())
    with pytest.raises(NotFound, match="did you mean chat"):
        find_hook(hooks, "chta")
    assert without_hook(hooks, "chat") == ()


def test_retries_back_off_to_five_minutes_and_give_up_after_a_day() -> None:
    assert [retry_after(n, 0.5) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_after(1, 0.0) == 0.75 and retry_after(1, 0.999) < 1.25
    assert retry_after(20, 0.999) == MAX_RETRY_SECONDS
    assert retry_after(10_000, 0.5) == MAX_RETRY_SECONDS
    assert not gives_up(0.0, 24 * 3600 - 1) and gives_up(0.0, 24 * 3600)


def test_docs_show_one_example_of_every_type() -> None:
    """docs/events.md: a JSON example per type, in the envelope hooks receive, with the
    data keys the code sends for the types whose data is fixed."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "events.md").read_text()
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]
    assert sorted(e["type"] for e in examples) == sorted(EVENT_TYPES)
    envelope = ["id", "type", "time", "service", "revision", "actor", "data"]
    assert all(list(e) == envelope for e in examples)
    by_type = {e["type"]: e["data"] for e in examples}
    world = _blue_green()
    down = ops.set_traffic(world, CTX, service="default", weights=[("blue", 100)])
    for event in _events(world, down):
        assert set(by_type[event.type]) == set(event.data), event.type
    assert set(by_type["fleet.nack"]) == set(nack_event("n", "t", "v", "e", "t").data)
