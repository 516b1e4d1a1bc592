"""The blue-green rules, as pure functions of the world, table-driven."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.worlds import context
from xds_server.errors import (
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    RevisionConflict,
    XdsServerError,
)
from xds_server.model import operations as ops
from xds_server.model import rollout as ro
from xds_server.model.names import parse_endpoint, parse_mirrors, parse_weights
from xds_server.model.state import DeploymentState, HistoryEntry, Mirror, Routing, World
from xds_server.translate.translator import build_virtual_host, cluster_name, holders_of


class Harness:
    """A world plus its history, driven like the store drives the model."""

    def __init__(self) -> None:
        self.world = World()
        self.entries: dict[tuple[str, int], HistoryEntry] = {}
        self._ctx = context(actor="tester", command="test")

    def entry(self, service: str, revision: int) -> HistoryEntry | None:
        return self.entries.get((service, revision))

    def _commit(self, change: ops.Change[Any]) -> Any:
        self.world = change.world
        for entry in change.history:
            self.entries[(entry.service, entry.revision)] = entry
        return change.result

    def apply(self, *endpoints: str, service: str = "default", **kwargs: Any) -> ops.ApplyResult:
        return self._commit(
            ops.apply_deployment(
                self.world,
                self._ctx,
                service=service,
                endpoints=[parse_endpoint(e) for e in endpoints or ("10.0.0.1:80",)],
                **kwargs,
            )
        )

    def set(
        self,
        tags: str | tuple[tuple[str, Any], ...],
        mirror: str | None = None,
        service: str = "default",
        **kwargs: Any,
    ) -> ops.TrafficResult:
        """``tags`` as typed (``blue=90,green=10``), or as pairs an API client may send."""
        return self._commit(
            ops.set_traffic(
                self.world,
                self._ctx,
                service=service,
                weights=parse_weights(tags) if isinstance(tags, str) else tags,
                mirrors=parse_mirrors(mirror) if mirror else (),
                **kwargs,
            )
        )

    def promote(self, service: str = "default", **kwargs: Any) -> ops.TrafficResult:
        return self._commit(ops.promote(self.world, self._ctx, service=service, **kwargs))

    def rollback(self, service: str = "default", **kwargs: Any) -> ops.TrafficResult:
        return self._commit(ops.rollback(self.world, self, self._ctx, service=service, **kwargs))

    def domains(self, service: str, *domains: str) -> ops.DomainsResult:
        return self._commit(ops.set_domains(self.world, service=service, domains=domains))

    def configure(self, service: str = "default", **kwargs: Any) -> ops.ServiceResult:
        domains = kwargs.pop("domains", ())
        change = ops.RoutingChange(**kwargs)
        return self._commit(
            ops.configure_service(
                self.world, self._ctx, service=service, domains=domains, routing=change
            )
        )

    def routing(self, service: str = "default") -> Routing:
        return self.world.services[service].routing

    def weights(self, service: str = "default") -> dict[str, int]:
        return dict(self.world.services[service].policy.weights)

    def holder(self, tag: str, service: str = "default") -> str:
        return dict(self.world.bindings_of(service))[tag]

    def state(self, deployment_id: str) -> DeploymentState:
        return self.world.deployments[deployment_id].state

    def revision(self, service: str = "default") -> int:
        return self.world.services[service].revision


@pytest.fixture
def h() -> Harness:
    return Harness()


def blue_green(h: Harness) -> tuple[str, str]:
    """blue serving 100, green applied at 0."""
    blue = h.apply(deployment_tag="blue").deployment.id
    green = h.apply(bluegreen=True).deployment.id
    return blue, green


class TestWalkthrough:
    def test_the_whole_blue_green_workflow(self, h: Harness) -> None:
        """The issue's walkthrough, step by step, through the pure model."""
        blue = h.apply("10.0.0.5:8080", deployment_tag="blue")
        assert (blue.deployment.tag, blue.weight) == ("blue", 100)
        # What the first apply set already: unchanged, no revision, no history.
        assert h.set("blue=100").unchanged
        assert h.weights() == {"blue": 100} and h.revision() == 1

        green = h.apply("10.0.0.9:8080", bluegreen=True)
        assert (green.deployment.tag, green.weight) == ("green", 0)
        assert green.deployment.state is DeploymentState.ACTIVE

        h.set("blue=90,green=10")
        traffic = ops.traffic_of(h.world, "default")
        assert [(t.deployment_id, t.tag, t.weight) for t in traffic.tags] == [
            (blue.deployment.id, "blue", 90),
            (green.deployment.id, "green", 10),
        ]

        h.set("blue=100,green=0", mirror="green=5")
        traffic = ops.traffic_of(h.world, "default")
        assert [(m.deployment_id, m.tag, m.percent) for m in traffic.mirror] == [
            (green.deployment.id, "green", "5")
        ]

        result = h.promote()
        assert h.weights() == {"blue": 0, "green": 100}
        assert result.traffic.mirror == ()
        assert h.state(blue.deployment.id) is DeploymentState.ACTIVE  # kept warm

        h.promote()  # again = rollback
        assert h.weights() == {"blue": 100, "green": 0}

        third = h.apply("10.0.0.10:8080", bluegreen=True)
        assert third.deployment.tag == "green"  # the colour that is not serving
        assert h.holder("green") == third.deployment.id
        assert h.state(green.deployment.id) is DeploymentState.SCALED_DOWN
        assert h.world.deployments[green.deployment.id].tag is None

        h.set("green=100")
        assert h.state(blue.deployment.id) is DeploymentState.SCALED_DOWN
        assert h.world.deployments[blue.deployment.id].tag == "blue"  # keeps its tag
        assert h.state(third.deployment.id) is DeploymentState.ACTIVE
        assert h.revision() == 8


class TestUnchanged:
    def test_asking_for_what_the_service_has_makes_no_revision(self, h: Harness) -> None:
        blue_green(h)
        h.set("blue=90,green=10", mirror="green=5")
        revision = h.revision()
        history = len(h.entries)
        for again in ("blue=90,green=10", "green=10,blue=90"):  # the order typed aside
            result = h.set(again, mirror="green=5")
            assert result.unchanged and result.traffic.revision == revision
        assert h.revision() == revision and len(h.entries) == history
        assert not h.set("blue=90,green=10").unchanged  # the mirror goes: a change
        assert not h.set("blue=90,green=10", sticky_header="x-user").unchanged


class TestUnchangedEndsAPausedRollout:
    def test_the_same_weights_on_a_paused_rollout_end_it_and_say_so(self, h: Harness) -> None:
        blue_green(h)
        spec = ro.RolloutSpec(stable="blue", canary="green", steps=(10, 100), interval_s=60)
        h._commit(ops.start_rollout(h.world, h._ctx, service="default", spec=spec))
        h._commit(
            ops.step_rollout(
                h.world, h._ctx, service="default", step=lambda r: ro.pause(r, h._ctx.clock)
            )
        )
        result = h.set("blue=90,green=10")  # what the paused rollout holds
        assert not result.unchanged
        rollout = h.world.services["default"].rollout
        assert rollout is not None and not rollout.running


class TestApply:
    @pytest.mark.parametrize(
        ("policy", "kwargs", "tag", "weight"),
        [
            (None, {}, "blue", 100),  # new service, plain
            (None, {"bluegreen": True}, "blue", 100),  # new service, bluegreen
            (None, {"deployment_tag": "canary"}, "canary", 100),  # first gets 100%
            ("blue=100", {"bluegreen": True}, "green", 0),
            ("green=100,blue=0", {"bluegreen": True}, "blue", 0),
            # Onto a tag that carries traffic: only --in-place (see the test below).
            ("blue=90,green=10", {"bluegreen": True, "in_place": True}, "green", 10),
            ("blue=100", {"in_place": True}, "blue", 100),  # in-place on serving
            ("blue=10,green=90", {"in_place": True}, "green", 90),
            ("blue=100", {"bluegreen": True, "in_place": True}, "green", 0),  # moves nothing
            ("blue=100", {"deployment_tag": "canary"}, "canary", 0),  # joins at 0
        ],
    )
    def test_which_tag_and_weight(
        self, h: Harness, policy: str | None, kwargs: dict[str, Any], tag: str, weight: int
    ) -> None:
        """The new deployment's tag and the weight it carries at once."""
        if policy:
            for name, _ in parse_weights(policy):
                h.apply(deployment_tag=name)
            h.set(policy)
        result = h.apply(**kwargs)
        assert (result.deployment.tag, result.weight) == (tag, weight)
        assert h.weights()[tag] == weight
        assert result.deployment.state is DeploymentState.ACTIVE

    def test_in_place_release_moves_the_tag_and_warns(self, h: Harness) -> None:
        """Applying onto a tag that carries traffic hands it over and says so."""
        old = h.apply(deployment_tag="blue").deployment.id
        result = h.apply(deployment_tag="blue", in_place=True)
        assert result.replaced_deployment_id == old
        assert h.holder("blue") == result.deployment.id
        assert h.state(old) is DeploymentState.SCALED_DOWN
        assert h.world.deployments[old].tag is None
        assert any("in-place release" in w for w in result.warnings)

    def test_bluegreen_during_canary_warns(self, h: Harness) -> None:
        """--bluegreen onto a tag at 10% takes those 10% at once, with a warning."""
        blue_green(h)
        h.set("blue=90,green=10")
        result = h.apply(bluegreen=True, in_place=True)
        assert result.weight == 10
        assert any("in-place release" in w for w in result.warnings)

    @pytest.mark.parametrize(
        ("policy", "kwargs", "message"),
        [
            ("blue=100", {}, "tag blue carries 100% of service default's traffic"),
            ("blue=100", {"deployment_tag": "blue"}, "release beside it with --bluegreen"),
            (
                "blue=90,green=10",
                {"bluegreen": True},
                "--bluegreen picks green, the other colour, which carries 10% (a canary)",
            ),
        ],
    )
    def test_an_apply_that_would_move_traffic_needs_in_place(
        self, h: Harness, policy: str, kwargs: dict[str, Any], message: str
    ) -> None:
        """Refused with the fix, nothing changed: a new build takes no traffic unasked."""
        blue_green(h)
        h.set(policy)
        before = h.world
        with pytest.raises(PreconditionFailed, match=re.escape(message)) as refused:
            h.apply(**kwargs)
        assert "or pass --in-place to replace deployment" in str(refused.value)
        assert h.world is before

    def test_joining_at_zero_has_no_in_place_warning(self, h: Harness) -> None:
        """A tag without traffic is not an in-place release."""
        h.apply(deployment_tag="blue")
        assert not any("in-place" in w for w in h.apply(bluegreen=True).warnings)

    @pytest.mark.parametrize("kwargs", [{}, {"bluegreen": True}])
    def test_tie_is_refused(self, h: Harness, kwargs: dict[str, Any]) -> None:
        """On a 50/50 tie there is no serving tag: ask for --deployment-tag."""
        blue_green(h)
        h.set("blue=50,green=50")
        before = h.world
        with pytest.raises(PreconditionFailed, match="--deployment-tag"):
            h.apply(**kwargs)
        assert h.world is before

    def test_bluegreen_needs_a_colour(self, h: Harness) -> None:
        """--bluegreen on a service served by another tag names the fix."""
        h.apply(deployment_tag="canary")
        with pytest.raises(PreconditionFailed, match=r"serving tag is canary.*--deployment-tag"):
            h.apply(bluegreen=True)

    def test_default_service_answers_everything(self, h: Harness) -> None:
        """`default` answers *; another service is unrouted until it has a domain."""
        assert h.apply().warnings == ()
        assert h.world.services["default"].domains == ("*",)
        result = h.apply(service="shop")
        assert h.world.services["shop"].domains == ()
        assert any("services set shop --domain" in w for w in result.warnings)

    def test_default_without_wildcard_when_taken(self, h: Harness) -> None:
        """If another service holds *, `default` starts without domains."""
        h.domains("shop", "*")
        h.apply()
        assert h.world.services["default"].domains == ()

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            ({"deployment_tag": "Blue"}, InvalidRequest, "lowercase DNS label"),
            ({"service": "My_Service"}, InvalidRequest, "service name"),
            ({"deployment_tag": "blue", "bluegreen": True}, InvalidRequest, "exclude each other"),
            ({"labels": [("version", "a"), ("version", "b")]}, InvalidRequest, "given twice"),
            ({"if_revision": 7}, RevisionConflict, "at revision 1, not 7"),
        ],
    )
    def test_refusals(
        self, h: Harness, kwargs: dict[str, Any], error: type[Exception], message: str
    ) -> None:
        """Bad applies are refused and change nothing."""
        h.apply(deployment_tag="blue")
        before = h.world
        with pytest.raises(error, match=message):
            h.apply(**kwargs)
        assert h.world is before

    def test_no_endpoints(self, h: Harness) -> None:
        """A deployment without endpoints is refused."""
        with pytest.raises(InvalidRequest, match="at least one endpoint"):
            ops.apply_deployment(h.world, h._ctx, service="default", endpoints=[])


class TestSetTraffic:
    def test_left_out_tags_are_scaled_down_and_back(self, h: Harness) -> None:
        """Leaving a tag out scales its deployment down; listing it again scales it up."""
        blue, _ = blue_green(h)
        result = h.set("green=100")
        assert h.state(blue) is DeploymentState.SCALED_DOWN
        assert result.warnings == ("scaled down: blue (left out of --tags)",)
        h.set("green=100,blue=0")
        assert h.state(blue) is DeploymentState.ACTIVE

    def test_order_is_kept(self, h: Harness) -> None:
        """Weights keep the operator's order (Envoy walks clusters in order)."""
        blue_green(h)
        h.set("green=10,blue=90")
        assert list(h.weights()) == ["green", "blue"]

    def test_revision_grows(self, h: Harness) -> None:
        """Every change bumps the revision; --if-revision accepts the current one."""
        blue_green(h)
        h.set("blue=90,green=10", if_revision=2)
        assert h.revision() == 3

    @pytest.mark.parametrize(
        ("tags", "mirror", "error", "message"),
        [
            (
                "blue=90,green=20",
                None,
                InvalidRequest,
                r"weights must add up to 100 \(got blue=90, green=20 = 110\)",
            ),
            ("blue=50", None, InvalidRequest, r"\(got blue=50 = 50\)"),
            # The CLI refuses these already (tests/test_names.py); any API client may send them.
            (
                (("blue", -10), ("green", 110)),
                None,
                InvalidRequest,
                "weight of blue must be from 0 to 100",
            ),
            ((("blue", 101),), None, InvalidRequest, "weight of blue must be from 0 to 100"),
            (
                (("blue", True), ("green", 99)),
                None,
                InvalidRequest,
                r"weight of blue must be a whole number from 0 to 100 \(got True\)",
            ),
            ((("blue", 100.0),), None, InvalidRequest, "weight of blue must be a whole number"),
            ("blue=50,blue=50", None, InvalidRequest, "tag blue is listed twice"),
            (
                "blue=90,purple=10",
                None,
                InvalidRequest,
                "no deployment of service default holds tag purple",
            ),
            ("Blue=100", None, InvalidRequest, "lowercase DNS label"),
            ("blue=100", "green=5", InvalidRequest, "mirror target green is not in --tags"),
            ("blue=100,green=0", "blue=5", InvalidRequest, "already gets 100% of traffic"),
            ("blue=100,green=0", "green=5,green=6", InvalidRequest, "given twice"),
            ("blue=0,green=0", None, InvalidRequest, "got blue=0, green=0 = 0"),
        ],
    )
    def test_refusals(
        self,
        h: Harness,
        tags: str | tuple[tuple[str, Any], ...],
        mirror: str | None,
        error: type[Exception],
        message: str,
    ) -> None:
        """Every broken policy is refused with the problem named; nothing changes."""
        blue_green(h)
        before = h.world
        with pytest.raises(error, match=message):
            h.set(tags, mirror)
        assert h.world is before

    def test_collects_every_problem(self, h: Harness) -> None:
        """One refusal lists all problems, so the operator fixes them in one go."""
        blue_green(h)
        with pytest.raises(InvalidRequest) as refused:
            h.set("blue=90,purple=20", "green=5")
        assert len(refused.value.problems) == 3

    def test_empty_policy(self, h: Harness) -> None:
        """A policy with no tags is refused."""
        h.apply()
        with pytest.raises(InvalidRequest, match="at least one TAG=WEIGHT"):
            ops.set_traffic(h.world, h._ctx, service="default", weights=())

    def test_unknown_service(self, h: Harness) -> None:
        """Naming a service that does not exist says how to create it."""
        with pytest.raises(NotFound, match="apply --service nope"):
            h.set("blue=100", service="nope")

    def test_if_revision_conflict(self, h: Harness) -> None:
        """A stale --if-revision is refused with the current revision."""
        blue_green(h)
        with pytest.raises(RevisionConflict, match="at revision 2, not 1"):
            h.set("blue=90,green=10", if_revision=1)

    def test_mirror_to_a_weighted_tag(self, h: Harness) -> None:
        """Mirroring to a tag below 100% is allowed, with decimals."""
        blue_green(h)
        h.set("blue=90,green=10", "green=0.25")
        assert h.world.services["default"].policy.mirrors == (Mirror("green", 25),)


class TestPromote:
    def test_clears_mirror_and_keeps_old_warm(self, h: Harness) -> None:
        """Promote sends 100% over, keeps the old tag at 0 and clears mirrors."""
        blue, _ = blue_green(h)
        h.set("blue=100,green=0", "green=5")
        result = h.promote()
        assert h.weights() == {"blue": 0, "green": 100}
        assert result.warnings == ("mirror cleared",)
        assert h.state(blue) is DeploymentState.ACTIVE

    def test_to_names_the_target(self, h: Harness) -> None:
        """--to picks among several tags; the others go to 0 but stay listed."""
        blue_green(h)
        h.apply(deployment_tag="canary")
        h.set("blue=80,green=10,canary=10")
        h.promote(to_tag="canary")
        assert h.weights() == {"blue": 0, "green": 0, "canary": 100}

    def test_to_resolves_a_tie(self, h: Harness) -> None:
        """On a tie, --to says where traffic goes."""
        blue_green(h)
        h.set("blue=50,green=50")
        h.promote(to_tag="green")
        assert h.weights() == {"blue": 0, "green": 100}

    @pytest.mark.parametrize(
        ("setup", "kwargs", "message"),
        [
            ("blue=100", {}, "nothing to promote to.*apply --service default --bluegreen"),
            ("blue=50,green=50", {}, "promote --to TAG"),
            ("blue=80,green=10,canary=10", {}, "several other tags.*--to TAG"),
            ("blue=100,green=0", {"to_tag": "purple"}, "tag purple is not in the traffic policy"),
            ("blue=100,green=0", {"to_tag": "blue"}, "already carries 100%"),
        ],
    )
    def test_refusals(self, h: Harness, setup: str, kwargs: dict[str, Any], message: str) -> None:
        """Promote with nothing, or no single thing, to promote to is refused."""
        for tag, _ in parse_weights(setup):
            h.apply(deployment_tag=tag)
        h.set(setup)
        before = h.world
        with pytest.raises(PreconditionFailed, match=message):
            h.promote(**kwargs)
        assert h.world is before


class TestRollback:
    def test_second_rollback_undoes_the_first(self, h: Harness) -> None:
        """Rollback restores the state before the latest change; again undoes it."""
        blue_green(h)
        h.set("blue=90,green=10", "green=5")
        h.rollback()
        assert h.weights() == {"blue": 100, "green": 0}
        assert h.world.services["default"].policy.mirrors == ()
        h.rollback()
        assert h.weights() == {"blue": 90, "green": 10}
        assert h.world.services["default"].policy.mirrors == (Mirror("green", 500),)

    def test_undoes_an_in_place_release(self, h: Harness) -> None:
        """Rollback rebinds the tag to the old deployment and scales it back up."""
        old = h.apply(deployment_tag="blue").deployment.id
        new = h.apply(deployment_tag="blue", in_place=True).deployment.id
        h.rollback()
        assert h.holder("blue") == old
        assert h.state(old) is DeploymentState.ACTIVE
        assert h.state(new) is DeploymentState.SCALED_DOWN
        assert h.world.deployments[new].tag is None

    def test_scales_up_what_it_needs(self, h: Harness) -> None:
        """A scaled-down deployment the target revision routes to comes back."""
        blue, _ = blue_green(h)
        h.set("blue=90,green=10")
        h.set("green=100")
        assert h.state(blue) is DeploymentState.SCALED_DOWN
        h.rollback(to_revision=3)
        assert h.weights() == {"blue": 90, "green": 10}
        assert h.state(blue) is DeploymentState.ACTIVE
        assert h.revision() == 5

    def test_records_history(self, h: Harness) -> None:
        """Each change records who, what, and the pictures before and after."""
        blue, green = blue_green(h)
        h.set("blue=90,green=10")
        entry = h.entry("default", 3)
        assert entry is not None
        assert entry.before.policy.weights == (("blue", 100), ("green", 0))
        assert entry.after.policy.weights == (("blue", 90), ("green", 10))
        assert entry.after.bindings == (("blue", blue), ("green", green))
        assert (entry.actor, entry.command) == ("tester", "test")

    def test_refuses_when_a_needed_deployment_is_gone(self, h: Harness) -> None:
        """A revision whose deployment was deleted cannot be restored."""
        blue, _ = blue_green(h)
        h.set("green=100")
        h._commit(ops.delete_deployment(h.world, deployment_id=blue))
        before = h.world
        with pytest.raises(PreconditionFailed, match=f"deployment {blue}.*no longer exists"):
            h.rollback()
        assert h.world is before

    @pytest.mark.parametrize(
        ("kwargs", "error", "message"),
        [
            ({}, PreconditionFailed, "nothing to roll back"),
            ({"to_revision": 1}, PreconditionFailed, "at revision 1 already"),
            ({"to_revision": 9}, NotFound, "has no revision 9"),
        ],
    )
    def test_refusals(
        self, h: Harness, kwargs: dict[str, Any], error: type[XdsServerError], message: str
    ) -> None:
        """Rolling back past the start, to now or to nowhere is refused."""
        h.apply()
        with pytest.raises(error, match=message):
            h.rollback(**kwargs)


class TestDeployments:
    def test_set_endpoints_keeps_revision(self, h: Harness) -> None:
        """set-endpoints changes endpoints only: no revision, no history."""
        deployment = h.apply().deployment.id
        change = ops.set_endpoints(
            h.world, deployment_id=deployment, endpoints=[parse_endpoint("10.9.9.9:81")]
        )
        assert change.history == ()
        h._commit(change)
        assert [str(e) for e in h.world.deployments[deployment].endpoints] == ["10.9.9.9:81"]
        assert h.revision() == 1

    def test_unknown_deployment(self, h: Harness) -> None:
        """An unknown id says where to look."""
        with pytest.raises(NotFound, match="deployments list"):
            ops.set_endpoints(h.world, deployment_id="cnope", endpoints=[])

    def test_delete_only_scaled_down(self, h: Harness) -> None:
        """An active deployment cannot be deleted; a scaled-down one can."""
        blue, _ = blue_green(h)
        with pytest.raises(PreconditionFailed, match="leaving blue out"):
            ops.delete_deployment(h.world, deployment_id=blue)
        h.set("green=100")
        h._commit(ops.delete_deployment(h.world, deployment_id=blue))
        assert blue not in h.world.deployments


class TestDomains:
    def test_set_and_create(self, h: Harness) -> None:
        """services set creates a service and replaces its domains."""
        assert h.domains("shop", "shop.example.com").created
        result = h.domains("shop", "shop.example.com", "www.shop.example.com")
        assert not result.created
        assert h.world.services["shop"].domains == ("shop.example.com", "www.shop.example.com")

    @pytest.mark.parametrize(
        ("domains", "message"),
        [
            (("shop.example.com",), "service shop holds shop.example.com already"),
            (("*",), r"service default answers every host \(\*\) already"),
            (("a.example.com", "a.example.com"), "given twice"),
            ((), "at least one --domain"),
            (("bad domain",), "is not valid"),
        ],
    )
    def test_refusals(self, h: Harness, domains: tuple[str, ...], message: str) -> None:
        """A domain belongs to one service and at most one service holds *."""
        h.apply()
        h.domains("shop", "shop.example.com")
        before = h.world
        with pytest.raises(InvalidRequest, match=message):
            h.domains("cart", *domains)
        assert h.world is before

    def test_move_a_domain(self, h: Harness) -> None:
        """A domain freed by one service can go to another."""
        h.domains("shop", "shop.example.com", "old.example.com")
        h.domains("shop", "shop.example.com")
        h.domains("cart", "old.example.com")
        assert h.world.domain_owner("old.example.com") == "cart"


class TestRouting:
    """Override, sticky and shadow headers: state with revisions, history and rollback."""

    def test_a_routing_change_is_a_revision_that_rollback_undoes(self, h: Harness) -> None:
        blue_green(h)
        before = h.revision()
        result = h.configure(override_header="x-deployment-tag")
        assert result.changed and h.revision() == before + 1
        assert h.routing().override_header == "x-deployment-tag"
        entry = h.entry("default", h.revision())
        assert entry is not None
        assert entry.before.routing.override_header is None
        assert entry.after.routing.override_header == "x-deployment-tag"
        h.rollback()
        assert h.routing().override_header is None

    def test_the_same_settings_again_make_no_revision(self, h: Harness) -> None:
        blue_green(h)
        h.configure(override_header="x-deployment-tag", mirror_host_suffix=False)
        revision = h.revision()
        again = h.configure(override_header="x-deployment-tag", mirror_host_suffix=False)
        assert not again.changed and h.revision() == revision

    def test_domains_alone_make_no_revision(self, h: Harness) -> None:
        blue_green(h)
        revision = h.revision()
        result = h.configure("shop", domains=["shop.example.com"])
        assert result.created and result.changed and h.revision("shop") == 0
        assert h.revision() == revision

    def test_removing_and_defaults(self, h: Harness) -> None:
        blue_green(h)
        assert h.routing() == Routing(shadow_header="x-shadow", mirror_host_suffix=True)
        h.configure(shadow_header="x-mirrored")
        assert h.routing().shadow_header == "x-mirrored"
        h.configure(shadow_header="")
        assert h.routing().shadow_header is None

    def test_sticky_survives_set_promote_and_ends_with_no_sticky(self, h: Harness) -> None:
        blue_green(h)
        h.set("blue=90,green=10", sticky_header="x-user-id")
        h.set("green=20,blue=80")
        assert h.routing().sticky_header == "x-user-id"
        h.promote()
        assert h.routing().sticky_header == "x-user-id"
        h.rollback()
        assert h.routing().sticky_header == "x-user-id"
        h.set("blue=100,green=0", sticky_header="")
        assert h.routing().sticky_header is None

    @pytest.mark.parametrize(
        ("settings", "message"),
        [
            ({"override_header": "X-Deployment-Tag"}, "write --override-header x-deployment-tag"),
            ({"override_header": ":path"}, "pseudo-header"),
            ({"override_header": "host"}, "what virtual hosts match"),
            ({"sticky_header": "transfer-encoding"}, "hop-by-hop"),
            ({"shadow_header": "x-envoy-shadow"}, "Envoy owns"),
            ({"shadow_header": "a b"}, "not a valid header name"),
            ({"override_header": "x-shadow"}, "both the override header and the shadow header"),
        ],
    )
    def test_bad_header_names_are_refused(
        self, h: Harness, settings: dict[str, str], message: str
    ) -> None:
        blue_green(h)
        before = h.world
        with pytest.raises(InvalidRequest, match=message):
            if "sticky_header" in settings:
                h.set("blue=90,green=10", **settings)
            else:
                h.configure(**settings)
        assert h.world is before

    def test_nothing_to_change_is_refused(self, h: Harness) -> None:
        blue_green(h)
        with pytest.raises(InvalidRequest, match="give a setting to change"):
            h.configure()


class TestRoutingTranslation:
    """What the routing settings become in the service's virtual host."""

    def _host(self, h: Harness) -> Any:
        service = h.world.services["default"]
        return build_virtual_host(service, holders_of(h.world.deployments_of("default")))

    def test_clusters_are_listed_by_tag_whatever_the_typed_order(self, h: Harness) -> None:
        blue, green = blue_green(h)
        h.set("green=10,blue=90")
        first = list(self._host(h).routes[-1].route.weighted_clusters.clusters)
        h.set("blue=80,green=20")
        second = list(self._host(h).routes[-1].route.weighted_clusters.clusters)
        names = [cluster_name("default", blue), cluster_name("default", green)]
        assert [c.name for c in first] == names == [c.name for c in second]

    def test_override_routes_precede_the_split_for_listed_tags_only(self, h: Harness) -> None:
        blue, green = blue_green(h)
        grey = h.apply(deployment_tag="grey").deployment.id
        h.set("blue=100,green=0")  # grey is left out: scaled down
        h.configure(override_header="x-deployment-tag")
        routes = list(self._host(h).routes)
        overrides = [(r.match.headers[0].string_match.exact, r.route.cluster) for r in routes[:-1]]
        assert overrides == [
            ("blue", cluster_name("default", blue)),
            ("green", cluster_name("default", green)),
        ]
        assert cluster_name("default", grey) not in {c for _, c in overrides}
        assert routes[-1].route.weighted_clusters.clusters
        h.configure(override_header="")
        assert len(self._host(h).routes) == 1

    def test_sticky_split_hashes_the_header(self, h: Harness) -> None:
        blue_green(h)
        h.set("blue=90,green=10", sticky_header="x-user-id")
        action = self._host(h).routes[-1].route
        assert action.weighted_clusters.use_hash_policy.value is True
        assert [p.header.header_name for p in action.hash_policy] == ["x-user-id"]
        h.set("blue=90,green=10", sticky_header="")
        action = self._host(h).routes[-1].route
        assert not action.weighted_clusters.HasField("use_hash_policy")
        assert not action.hash_policy

    def test_shadows_are_marked_and_may_keep_their_host(self, h: Harness) -> None:
        blue_green(h)
        h.set("blue=100,green=0", mirror="green=5")
        (policy,) = self._host(h).routes[-1].route.request_mirror_policies
        (mutation,) = policy.request_headers_mutations
        assert (mutation.append.header.key, mutation.append.header.value) == ("x-shadow", "1")
        assert not policy.disable_shadow_host_suffix_append
        h.configure(shadow_header="", mirror_host_suffix=False)
        (policy,) = self._host(h).routes[-1].route.request_mirror_policies
        assert not policy.request_headers_mutations
        assert policy.disable_shadow_host_suffix_append
