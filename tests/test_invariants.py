"""The whole-world rules (xds_server.model.invariants): each one caught, and kept by
every sequence of operations; a world that keeps them makes a consistent snapshot."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.worlds import context
from xds_server.errors import NotFound, PreconditionFailed, XdsServerError
from xds_server.model import operations as ops
from xds_server.model.invariants import Subject, world_diff, world_problems
from xds_server.model.names import parse_endpoint
from xds_server.model.state import (
    DeploymentState,
    Endpoint,
    HistoryEntry,
    Mirror,
    Service,
    TrafficPolicy,
    World,
)
from xds_server.translate import TranslateOptions
from xds_server.xds.builder import snapshot_of


def _canary() -> World:
    """default: blue 90, green 10 (mirror 5% to green); shop answers shop.example.com."""
    ctx = context()
    world = World()
    for kwargs in ({"deployment_tag": "blue"}, {"bluegreen": True}):
        world = ops.apply_deployment(
            world, ctx, service="default", endpoints=[parse_endpoint("10.0.0.1:80")], **kwargs
        ).world
    world = ops.set_traffic(
        world,
        ctx,
        service="default",
        weights=[("blue", 90), ("green", 10)],
        mirrors=[Mirror("green", 500)],
    ).world
    return ops.set_domains(world, service="shop", domains=["shop.example.com"]).world


def _deployment(world: World, tag: str) -> str:
    return dict(world.bindings_of("default"))[tag]


def _with_service(world: World, **changes: Any) -> World:
    service = dataclasses.replace(world.services["default"], **changes)
    return World({**world.services, "default": service}, world.deployments)


def _with_deployment(world: World, holder: str, **changes: Any) -> World:
    """The world with the deployment that holds tag ``holder`` changed."""
    deployment_id = _deployment(world, holder)
    deployment = dataclasses.replace(world.deployments[deployment_id], **changes)
    return World(world.services, {**world.deployments, deployment_id: deployment})


def test_a_world_made_by_operations_keeps_every_rule() -> None:
    assert world_problems(_canary()) == []


BROKEN = [
    (
        "a weight that is a boolean",
        lambda w: _with_service(w, policy=TrafficPolicy((("blue", True), ("green", 10)))),
        "weight of blue must be a whole number from 0 to 100 (got True)",
    ),
    (
        "weights out of range",
        lambda w: _with_service(w, policy=TrafficPolicy((("blue", 500), ("green", -400)))),
        "weight of blue must be from 0 to 100 (got 500)",
    ),
    (
        "a revision that is not a whole number",
        lambda w: _with_service(w, revision=16.5),
        "revision must be a whole number",
    ),
    (
        "a serving deployment marked scaled down",
        lambda w: _with_deployment(w, "blue", state=DeploymentState.SCALED_DOWN),
        "is scaled_down but holds tag blue",
    ),
    (
        "a deployment without endpoints",
        lambda w: _with_deployment(w, "green", endpoints=()),
        "a deployment needs at least one endpoint",
    ),
    (
        "an endpoint that is not an address",
        lambda w: _with_deployment(w, "green", endpoints=(Endpoint("bad_host", 80),)),
        "is not an IP address or a DNS name",
    ),
    (
        "an endpoint port out of range",
        lambda w: _with_deployment(w, "green", endpoints=(Endpoint("10.0.0.1", 70000),)),
        "the port must be from 1 to 65535",
    ),
    (
        "a listed tag nobody holds",
        lambda w: _with_deployment(w, "green", tag=None, state=DeploymentState.SCALED_DOWN),
        "no deployment of service default holds tag green",
    ),
    (
        "an active deployment without a tag",
        lambda w: _with_deployment(w, "green", tag=None),
        "is active but has no tag",
    ),
    (
        "two deployments holding one tag",
        lambda w: _with_deployment(w, "green", tag="blue"),
        "tag blue is held by deployment",
    ),
    (
        "a deployment of a service that does not exist",
        lambda w: _with_deployment(w, "green", service="ghost"),
        "belongs to service 'ghost', which does not exist",
    ),
    (
        "a domain of two services",
        lambda w: _with_service(w, domains=("*", "shop.example.com")),
        "domain shop.example.com belongs to service shop too",
    ),
    (
        "a mirror out of range",
        lambda w: _with_service(
            w, policy=TrafficPolicy((("blue", 90), ("green", 10)), (Mirror("green", 0),))
        ),
        "mirror percent for green must be above 0",
    ),
    (
        "mirrors without weights",
        lambda w: _with_service(w, policy=TrafficPolicy((), (Mirror("green", 500),))),
        "has mirrors but no weights",
    ),
]


@pytest.mark.parametrize(("what", "break_it", "message"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_rule_is_caught(what: str, break_it: Any, message: str) -> None:
    """Every way a world can be broken by hand is named, on its service or deployment."""
    problems = world_problems(break_it(_canary()))
    assert any(message in p.message for p in problems), problems
    assert all(p.subject in (Subject.SERVICE, Subject.DEPLOYMENT) for p in problems)


def test_only_the_named_services_are_checked() -> None:
    """The store checks what a change touched: a broken service elsewhere is not its
    concern, the touched one is."""
    world = _with_service(_canary(), revision=-1)
    assert world_problems(world, ["shop"]) == []
    assert [p.name for p in world_problems(world, ["default"])] == ["default"]


def test_a_diff_names_the_services_it_touches() -> None:
    before = _canary()
    after = _with_deployment(before, "green", endpoints=(Endpoint("10.0.0.2", 80),))
    diff = world_diff(before, after)
    assert diff.touched_services == {"default"}
    assert [d.id for d in diff.deployments] == [_deployment(before, "green")]
    assert diff.services == () and diff.removed_deployments == ()


# --- every operation keeps the rules, and the snapshot stays consistent ---------

SERVICES = ("default", "shop")
TAGS = ("blue", "green", "canary")
_step = st.one_of(
    st.tuples(st.just("apply"), st.sampled_from(SERVICES), st.sampled_from((*TAGS, None))),
    st.tuples(st.just("bluegreen"), st.sampled_from(SERVICES)),
    st.tuples(
        st.just("set"),
        st.sampled_from(SERVICES),
        st.integers(1, 3),  # how many of the held tags to list
        st.integers(0, 2),  # which held tag comes first
        st.integers(0, 100),
        st.booleans(),
    ),
    st.tuples(st.just("promote"), st.sampled_from(SERVICES)),
    st.tuples(st.just("rollback"), st.sampled_from(SERVICES), st.integers(0, 8)),
    st.tuples(st.just("delete"), st.integers(0, 12)),
    st.tuples(st.just("domains"), st.sampled_from(SERVICES), st.sampled_from(("a.com", "*"))),
)


class _History:
    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], HistoryEntry] = {}

    def entry(self, service: str, revision: int) -> HistoryEntry | None:
        return self.entries.get((service, revision))


def _weights(tags: list[str], first: int) -> list[tuple[str, int]]:
    shares = [first, 100 - first] + [0] * (len(tags) - 2) if len(tags) > 1 else [100]
    return list(zip(tags, shares, strict=False))


def _run(world: World, history: _History, ctx: ops.Context, step: tuple) -> ops.Change[Any]:
    kind, *rest = step
    if kind in ("apply", "bluegreen"):
        tag = rest[1] if kind == "apply" else None
        return ops.apply_deployment(
            world,
            ctx,
            service=rest[0],
            endpoints=[parse_endpoint("10.0.0.1:80")],
            deployment_tag=tag,
            bluegreen=kind == "bluegreen",
        )
    if kind == "set":
        service, count, start, first, mirrored = rest
        held = [tag for tag, _ in world.bindings_of(service)]
        tags = (held[start % len(held) :] + held[: start % len(held)])[:count] if held else TAGS
        weights = _weights(list(tags), first)
        mirrors = [Mirror(tags[-1], 250)] if mirrored and len(tags) > 1 else []
        return ops.set_traffic(world, ctx, service=service, weights=weights, mirrors=mirrors)
    if kind == "promote":
        return ops.promote(world, ctx, service=rest[0])
    if kind == "rollback":
        return ops.rollback(world, history, ctx, service=rest[0], to_revision=rest[1] or None)
    if kind == "delete":
        ids = sorted(world.deployments)
        deployment_id = ids[rest[0] % len(ids)] if ids else "cnone00000000000000000000"
        return ops.delete_deployment(world, deployment_id=deployment_id)
    return ops.set_domains(world, service=rest[0], domains=[rest[1]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_step, min_size=1, max_size=25))
def test_every_operation_keeps_every_rule(steps: list[tuple]) -> None:
    """Random sequences of operations, refused ones included: after each, the world
    breaks no rule, its snapshot is one Envoy accepts, and what the operation says it
    touched covers every row it changed."""
    world, history, ctx = World(), _History(), context()
    for step in steps:
        try:
            change = _run(world, history, ctx, step)
        except XdsServerError:
            continue
        before, world = world, change.world
        for entry in change.history:
            history.entries[(entry.service, entry.revision)] = entry
        # What the change says it touched is all it changed (the store writes only that),
        # and the indexes it carried along equal ones built afresh.
        assert world_diff(before, world, [change.touched]) == world_diff(before, world), step
        assert world.index == World(world.services, world.deployments).index, step
        assert world_problems(world) == [], step
        assert snapshot_of(world, TranslateOptions()).problems() == [], step


def test_rollback_refuses_a_picture_that_breaks_the_rules() -> None:
    """History edited by hand (weights 500/-400) is refused as a rollback target, naming
    the revision and the rule, instead of being restored."""
    world = _canary()
    history = _History()
    blue, green = _deployment(world, "blue"), _deployment(world, "green")
    bad = ops.Picture(
        policy=TrafficPolicy((("blue", 500), ("green", -400))),
        bindings=(("blue", blue), ("green", green)),
    )
    history.entries[("default", 2)] = HistoryEntry("default", 2, "t", "a", "c", bad, bad)
    with pytest.raises(PreconditionFailed, match="cannot roll back service default to "):
        ops.rollback(world, history, context(), service="default", to_revision=2)


def test_rollback_refuses_a_binding_to_another_services_deployment() -> None:
    world = ops.apply_deployment(
        _canary(), context(), service="shop", endpoints=[parse_endpoint("10.0.0.3:80")]
    ).world
    shop_blue = dict(world.bindings_of("shop"))["blue"]
    history = _History()
    picture = ops.Picture(TrafficPolicy((("blue", 100),)), (("blue", shop_blue),))
    history.entries[("default", 1)] = HistoryEntry("default", 1, "t", "a", "c", picture, picture)
    with pytest.raises(PreconditionFailed, match="of service shop"):
        ops.rollback(world, history, context(), service="default", to_revision=1)


def test_rollback_to_revision_zero_is_not_found() -> None:
    with pytest.raises(NotFound, match="has no revision 0"):
        ops.rollback(_canary(), _History(), context(), service="default", to_revision=0)


def test_services_keep_their_names() -> None:
    world = _canary()
    renamed = World({**world.services, "default": Service(name="other")}, world.deployments)
    assert any("is filed under name default" in p.message for p in world_problems(renamed))
