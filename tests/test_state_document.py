"""State documents (`xdsctl state import`): every hand edit that would break the server
is refused before anything is written, naming where (a JSON path) and what."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.worlds import context
from xds_server.errors import InvalidRequest
from xds_server.model import operations as ops
from xds_server.model.names import parse_endpoint
from xds_server.model.state import HistoryEntry, Mirror, World
from xds_server.store.base import StateDump
from xds_server.store.state_document import state_from_json, state_to_json


def _exported() -> dict[str, Any]:
    """What `state export` writes for: default at blue 90 / green 10 with a 5% mirror,
    shop with one domain and one deployment, and every history entry."""
    ctx = context()
    world, history = World(), []

    def run(change: ops.Change[Any]) -> None:
        nonlocal world
        world = change.world
        history.extend(change.history)

    endpoint = [parse_endpoint("10.0.0.1:80")]
    run(ops.apply_deployment(world, ctx, service="default", endpoints=endpoint))
    run(ops.apply_deployment(world, ctx, service="default", endpoints=endpoint, bluegreen=True))
    weights = [("blue", 90), ("green", 10)]
    mirrors = [Mirror("green", 500)]
    run(ops.set_traffic(world, ctx, service="default", weights=weights, mirrors=mirrors))
    run(ops.set_domains(world, service="shop", domains=["shop.example.com"]))
    run(ops.apply_deployment(world, ctx, service="shop", endpoints=endpoint))
    routing = ops.RoutingChange(override_header="x-deployment-tag", mirror_host_suffix=False)
    run(ops.configure_service(world, ctx, service="shop", routing=routing))
    entries: tuple[HistoryEntry, ...] = tuple(history)
    return json.loads(state_to_json(StateDump(world=world, history=entries)))


def _edited(edit: Callable[[dict[str, Any]], None]) -> str:
    document = copy.deepcopy(_exported())
    edit(document)
    return json.dumps(document)


def _service(document: dict[str, Any], name: str = "default") -> dict[str, Any]:
    return next(s for s in document["world"]["services"] if s["name"] == name)


def _deployment(document: dict[str, Any], tag: str, service: str = "default") -> dict[str, Any]:
    deployments = document["world"]["deployments"]
    return next(d for d in deployments if d["tag"] == tag and d["service"] == service)


def _set(path: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Any:
    return lambda document: path(document).__setitem__(key, value)


def test_an_export_loads_back_identical() -> None:
    text = json.dumps(_exported())
    assert json.loads(state_to_json(state_from_json(text))) == json.loads(text)


def test_routing_settings_travel_with_the_state() -> None:
    """A service's routing and each history picture's come back from an export."""
    dump = state_from_json(json.dumps(_exported()))
    shop = dump.world.services["shop"]
    assert shop.routing.override_header == "x-deployment-tag"
    assert shop.routing.mirror_host_suffix is False
    latest = max((e for e in dump.history if e.service == "shop"), key=lambda e: e.revision)
    assert latest.after.routing == shop.routing
    assert latest.before.routing.override_header is None


def test_an_export_from_before_routing_loads_with_the_defaults() -> None:
    """Older exports have no routing keys: the defaults, shadows marked x-shadow."""
    document = _exported()
    for service in document["world"]["services"]:
        del service["routing"]
    for entry in document["history"]:
        del entry["before"]["routing"], entry["after"]["routing"]
    dump = state_from_json(json.dumps(document))
    assert dump.world.services["shop"].routing.shadow_header == "x-shadow"
    assert dump.world.services["shop"].routing.override_header is None


EDITS = [
    (
        "a weight that is a boolean",
        lambda d: _service(d)["weights"].__setitem__("blue", True),
        "$.world.services[0].weights.blue: Input should be a valid integer (got True)",
    ),
    (
        "an upper-case override header",
        lambda d: _service(d, "shop")["routing"].__setitem__("override_header", "X-Tag"),
        "$.world.services[1] (service shop): routing.override_header 'X-Tag' has upper-case",
    ),
    (
        "a history picture whose sticky header is hop-by-hop",
        lambda d: d["history"][-1]["after"]["routing"].__setitem__("sticky_header", "te"),
        "hop-by-hop",
    ),
    (
        "a revision of 16.5",
        _set(_service, "revision", 16.5),
        "$.world.services[0].revision: Input should be a valid integer (got 16.5)",
    ),
    (
        "a negative revision",
        _set(_service, "revision", -1),
        "$.world.services[0].revision: Input should be greater than or equal to 0",
    ),
    (
        "a serving deployment marked scaled_down",
        lambda d: _deployment(d, "blue").__setitem__("state", "scaled_down"),
        "is scaled_down but holds tag blue, which the weights list (weight 90)",
    ),
    (
        "a serving deployment without endpoints",
        lambda d: _deployment(d, "blue").__setitem__("endpoints", []),
        "a deployment needs at least one endpoint",
    ),
    (
        "an endpoint that is no address",
        lambda d: _deployment(d, "blue").__setitem__("endpoints", ["10.0.0.1:http"]),
        "$.world.deployments[0].endpoints[0]: endpoint '10.0.0.1:http': the port",
    ),
    (
        "a service listed twice",
        lambda d: d["world"]["services"].append({**_service(d), "weights": {"green": 100}}),
        "$.world.services[2]: service default is listed twice (also at $.world.services[0])",
    ),
    (
        "a deployment listed twice",
        lambda d: d["world"]["deployments"].append(dict(_deployment(d, "blue"))),
        "is listed twice (also at $.world.deployments[0])",
    ),
    (
        "a deployment of an unknown service",
        lambda d: _deployment(d, "blue", "shop").__setitem__("service", "ghost"),
        "belongs to service 'ghost', which does not exist",
    ),
    (
        "a domain held by two services",
        _set(_service, "domains", ["*", "shop.example.com"]),
        "domain shop.example.com belongs to service shop too",
    ),
    (
        "weights that do not add up",
        lambda d: _service(d)["weights"].__setitem__("blue", 80),
        "weights must add up to 100 (got blue=80, green=10 = 90)",
    ),
    (
        "a mistyped field",
        lambda d: _service(d).__setitem__("weight", {}),
        "$.world.services[0].weight: Extra inputs are not permitted",
    ),
    (
        "history weights 500/-400",
        lambda d: d["history"][2]["after"].__setitem__("weights", [["blue", 500], ["green", -400]]),
        "$.history[2] (service default, revision 3).after: weight of blue must be from 0 to 100",
    ),
    (
        "history binding a tag to another service's deployment",
        lambda d: d["history"][2]["after"]["bindings"].__setitem__(
            0, ["blue", _deployment(d, "blue", "shop")["id"]]
        ),
        "is bound to deployment c000000000000000000000003 of service shop",
    ),
    (
        "history binding a tag to something that is not a deployment id",
        lambda d: d["history"][2]["after"]["bindings"].__setitem__(0, ["blue", "nope"]),
        "tag blue is bound to 'nope', not a deployment id",
    ),
    (
        "a history revision beyond the service's",
        lambda d: d["history"][2].__setitem__("revision", 9),
        "is beyond the service's revision 3",
    ),
    (
        "a history entry twice",
        lambda d: d["history"].append(copy.deepcopy(d["history"][2])),
        "appears twice (also at $.history[2])",
    ),
]


@pytest.mark.parametrize(("what", "edit", "message"), EDITS, ids=[e[0] for e in EDITS])
def test_hand_edits_are_refused_with_their_place(what: str, edit: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        state_from_json(_edited(edit))
    text = str(refused.value)
    assert text.startswith("the state document is not valid, so nothing was imported: ")
    assert message in text
    assert text.endswith("and import it again")


def test_a_key_given_twice_is_refused() -> None:
    """JSON parsers keep the last of two equal keys silently; an import must not."""
    text = json.dumps(_exported()).replace('"revision": 3', '"revision": 3, "revision": 4', 1)
    with pytest.raises(InvalidRequest, match="the key 'revision' appears twice in one object"):
        state_from_json(text)


def test_history_may_name_a_deleted_deployment() -> None:
    """`deployments delete` leaves history naming the deployment: such an export loads
    (and a rollback that needs the deployment is refused by name, see test_operations)."""
    document = _exported()
    blue = _deployment(document, "blue", "shop")
    document["world"]["deployments"].remove(blue)
    _service(document, "shop")["weights"] = {}
    assert state_from_json(json.dumps(document)).world.deployments.keys().isdisjoint({blue["id"]})


def test_a_problem_list_is_bounded() -> None:
    """A document broken in thousands of places gets a readable refusal."""
    services = [{"name": f"s{i}", "revision": -1} for i in range(500)]
    text = json.dumps({"format": "xds_server-state/v1", "world": {"services": services}})
    with pytest.raises(InvalidRequest, match="and 480 more") as refused:
        state_from_json(text)
    assert len(str(refused.value)) < 5000


def _with_hooks(*hooks: dict[str, Any]) -> str:
    return _edited(lambda d: d.update(hooks=list(hooks)))


_HOOK = {
    "name": "chat",
    "url": "https://hooks.example/xds",
    "command": [],
    "events": ["traffic.*"],
    "timeout_s": 5.0,
    "created_at": "2026-01-01T00:00:00Z",
    "created_by": "alice",
    "signed": True,
    "secret": "k1",
}


def test_hooks_travel_with_their_secret_only_when_asked() -> None:
    dump = state_from_json(_with_hooks(_HOOK))
    assert dump.hooks is not None and dump.hooks[0].secret == "k1"
    assert "k1" not in state_to_json(dump)
    assert json.loads(state_to_json(dump))["hooks"][0]["signed"] is True
    assert json.loads(state_to_json(dump, include_secrets=True))["hooks"][0]["secret"] == "k1"
    # A document from before hooks existed says nothing of them: an import keeps the store's.
    assert state_from_json(json.dumps(_exported())).hooks is None


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        ({**_HOOK, "url": "ftp://x"}, "$.hooks[0]: --url 'ftp://x' must be http or https"),
        ({**_HOOK, "events": ["traffic.chnged"]}, "$.hooks[0]: event pattern 'traffic.chnged'"),
        ({**_HOOK, "signed": False}, "$.hooks[0]: has a secret but says signed: false"),
        ({**_HOOK, "timeout_s": 0.0, "url": "", "command": []}, "$.hooks[0]: a hook needs"),
    ],
)
def test_bad_hooks_are_refused_with_their_place(hook: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        state_from_json(_with_hooks(hook))


def test_two_hooks_with_one_name_are_refused() -> None:
    with pytest.raises(InvalidRequest, match=re.escape("$.hooks: two hooks with one name")):
        state_from_json(_with_hooks(_HOOK, _HOOK))


def test_a_bad_hook_entry_never_echoes_its_values() -> None:
    """A misspelled key beside the secret: refused, without showing what was there."""
    hook = {**_HOOK, "Secret": "supersecretvalue123"}
    with pytest.raises(InvalidRequest) as refused:
        state_from_json(_with_hooks(hook))
    assert "$.hooks[0].Secret" in str(refused.value)
    assert "supersecretvalue123" not in str(refused.value)
