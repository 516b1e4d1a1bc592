"""The per-type subscription rules, request by request, without a stream or a server."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.resources import CLUSTER, ENDPOINT, Resource, ResourceSet
from xds_server.xds.subscription import (
    DeltaSubscription,
    Pending,
    Settlement,
    Subscription,
    delta_request,
    sent,
    sotw_request,
)


def resource(name: str, version: str = "v1", type_url: str = CLUSTER) -> Resource:
    return Resource(type_url, name, version, f"{name}@{version}".encode())


A, B, A2 = resource("a"), resource("b"), resource("a", "v2")
AB = ResourceSet.of(CLUSTER, [A, B])


class Known:
    """The cache's memory of what it built: here, AB and its resources."""

    def known_set(self, type_url: str, version: str) -> ResourceSet | None:
        return AB if (type_url, version) == (CLUSTER, AB.version) else None

    def known_resource(self, type_url: str, name: str, version: str) -> Resource | None:
        found = AB.resources.get(name)
        return found if found is not None and found.version == version else None


KNOWN = Known()


def sotw(
    type_url: str = CLUSTER,
    names: tuple[str, ...] = (),
    version: str = "",
    nonce: str = "",
    error: str = "",
) -> discovery_pb2.DiscoveryRequest:
    request = discovery_pb2.DiscoveryRequest(
        type_url=type_url, resource_names=names, version_info=version, response_nonce=nonce
    )
    if error:
        request.error_detail.message = error
    return request


def delta(
    type_url: str = CLUSTER,
    subscribe: tuple[str, ...] = (),
    unsubscribe: tuple[str, ...] = (),
    nonce: str = "",
    error: str = "",
    initial: dict[str, str] | None = None,
) -> discovery_pb2.DeltaDiscoveryRequest:
    request = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url,
        resource_names_subscribe=subscribe,
        resource_names_unsubscribe=unsubscribe,
        response_nonce=nonce,
        initial_resource_versions=initial or {},
    )
    if error:
        request.error_detail.message = error
    return request


def in_flight(state: Subscription, nonce: str, target: ResourceSet) -> Pending:
    """A response of the whole of ``target`` sent on ``state``'s type."""
    pending = Pending(nonce, target, list(target.resources.values()))
    sent(state, pending)
    return pending


class TestSotwFirstRequest:
    def test_empty_cds_request_is_the_legacy_wildcard(self) -> None:
        state = Subscription(CLUSTER)
        assert sotw_request(state, sotw(), KNOWN).settled is None
        assert state.requested and state.wildcard
        assert state.held == {} and state.held_version == ""

    def test_eds_is_never_wildcard_and_star_is_no_name(self) -> None:
        state = Subscription(ENDPOINT)
        sotw_request(state, sotw(ENDPOINT, ("a", "*")), KNOWN)
        assert not state.wildcard and state.names == {"a"}

    def test_named_cds_request_is_not_wildcard(self) -> None:
        state = Subscription(CLUSTER)
        sotw_request(state, sotw(names=("a",)), KNOWN)
        assert not state.wildcard and state.names == {"a"}

    def test_a_reported_version_built_here_is_adopted(self) -> None:
        """A reconnecting node holding the current set: its content is known, nothing to send."""
        state = Subscription(CLUSTER)
        sotw_request(state, sotw(version=AB.version), KNOWN)
        assert state.held is AB.resources and state.held_version == AB.version

    def test_an_unknown_version_leaves_the_content_unknown(self) -> None:
        state = Subscription(CLUSTER)
        sotw_request(state, sotw(version="elsewhere"), KNOWN)
        assert state.held is None and state.held_version == "elsewhere"


class TestSotwAckAndNack:
    def started(self) -> tuple[Subscription, Pending]:
        state = Subscription(CLUSTER)
        sotw_request(state, sotw(), KNOWN)
        return state, in_flight(state, "1", AB)

    def test_ack_moves_what_the_node_holds(self) -> None:
        state, pending = self.started()
        outcome = sotw_request(state, sotw(version=AB.version, nonce="1"), KNOWN)
        assert outcome.settled == Settlement(pending)
        assert state.pending is None and not state.must_answer
        assert state.held is AB.resources and state.held_version == AB.version

    def test_nack_is_told_by_error_detail_not_by_version(self) -> None:
        """Envoy reports its last accepted version in a NACK; here even the new one."""
        state, pending = self.started()
        outcome = sotw_request(state, sotw(version=AB.version, nonce="1", error="bad"), KNOWN)
        assert outcome.settled == Settlement(pending, "bad")
        assert state.pending is None
        assert state.held == {} and state.held_version == ""

    def test_stale_nonce_is_ignored(self) -> None:
        state, pending = self.started()
        outcome = sotw_request(state, sotw(names=("x",), nonce="0"), KNOWN)
        assert outcome.stale and outcome.settled is None
        assert state.pending is pending and state.names == set()

    def test_latest_nonce_with_nothing_pending_must_be_answered(self) -> None:
        """Envoy re-requests EDS with the same names after a cluster change."""
        state = Subscription(ENDPOINT)
        sotw_request(state, sotw(ENDPOINT, ("a",)), KNOWN)
        in_flight(state, "1", AB)
        sotw_request(state, sotw(ENDPOINT, ("a",), nonce="1"), KNOWN)
        assert not state.must_answer
        sotw_request(state, sotw(ENDPOINT, ("a",), nonce="1"), KNOWN)
        assert state.must_answer

    def test_new_names_must_be_answered(self) -> None:
        state = Subscription(ENDPOINT)
        sotw_request(state, sotw(ENDPOINT, ("a",)), KNOWN)
        in_flight(state, "1", AB)
        outcome = sotw_request(state, sotw(ENDPOINT, ("a", "b"), nonce="1"), KNOWN)
        assert outcome.settled is not None
        assert state.names == {"a", "b"} and state.must_answer

    def test_a_wildcard_subscription_keeps_no_names(self) -> None:
        state, _pending = self.started()
        sotw_request(state, sotw(names=("a",), nonce="1"), KNOWN)
        assert state.wildcard and state.names == set() and not state.must_answer


class TestDeltaFirstRequest:
    def test_empty_subscribe_for_cds_is_wildcard_and_waits_for_an_answer(self) -> None:
        """A node holding nothing needs a response, even an empty one, to initialise."""
        state = DeltaSubscription(CLUSTER)
        assert delta_request(state, delta(), KNOWN).settled is None
        assert state.requested and state.wildcard and state.must_answer

    def test_initial_versions_are_held_known_or_not(self) -> None:
        state = DeltaSubscription(CLUSTER)
        delta_request(state, delta(initial={"a": "v1", "c": "old"}), KNOWN)
        assert state.held == {"a": A, "c": None}
        assert state.reported == {"a": "v1", "c": "old"}
        assert not state.must_answer

    def test_named_eds_subscription(self) -> None:
        state = DeltaSubscription(ENDPOINT)
        delta_request(state, delta(ENDPOINT, ("a", "b")), KNOWN)
        assert not state.wildcard and state.names == {"a", "b"}
        assert state.resend == set()  # the first response sends them anyway


class TestDeltaChanges:
    def started(self) -> DeltaSubscription:
        state = DeltaSubscription(ENDPOINT)
        delta_request(state, delta(ENDPOINT, ("a",)), KNOWN)
        state.held_version = "all"
        return state

    def test_subscribe_resends_even_unchanged_names(self) -> None:
        state = self.started()
        delta_request(state, delta(ENDPOINT, ("b",)), KNOWN)
        assert state.names == {"a", "b"} and state.resend == {"b"}
        assert state.held_version == ""

    def test_unsubscribe_forgets_what_is_held(self) -> None:
        state = self.started()
        state.held["a"] = A
        delta_request(state, delta(ENDPOINT, unsubscribe=("a",)), KNOWN)
        assert state.names == set() and state.held == {}

    def test_star_toggles_the_wildcard(self) -> None:
        state = self.started()
        delta_request(state, delta(ENDPOINT, ("*",)), KNOWN)
        assert state.wildcard and "*" not in state.names and "*" not in state.resend
        delta_request(state, delta(ENDPOINT, unsubscribe=("*",)), KNOWN)
        assert not state.wildcard

    def test_ack_merges_what_was_sent_and_removed(self) -> None:
        state = self.started()
        state.held.update({"a": A, "b": B})
        target = ResourceSet.of(CLUSTER, [A2])
        pending = Pending("1", target, [A2], ["b"])
        sent(state, pending)
        outcome = delta_request(state, delta(ENDPOINT, nonce="1"), KNOWN)
        assert outcome.settled == Settlement(pending)
        assert state.held == {"a": A2} and state.held_version == target.version

    def test_nack_leaves_what_is_held(self) -> None:
        state = self.started()
        pending = in_flight(state, "1", ResourceSet.of(CLUSTER, [A2]))
        outcome = delta_request(state, delta(ENDPOINT, nonce="1", error="no"), KNOWN)
        assert outcome.settled == Settlement(pending, "no")
        assert state.pending is None and state.held == {}

    def test_stale_nonce_settles_nothing_but_its_subscriptions_count(self) -> None:
        state = self.started()
        pending = in_flight(state, "2", AB)
        outcome = delta_request(state, delta(ENDPOINT, ("b",), nonce="1"), KNOWN)
        assert outcome.settled is None and not outcome.stale
        assert state.pending is pending and state.names == {"a", "b"}


class TestSent:
    def test_a_sent_response_is_in_flight_and_answers_a_re_request(self) -> None:
        state = Subscription(CLUSTER, must_answer=True)
        pending = in_flight(state, "7", AB)
        assert state.pending is pending and state.last_nonce == "7"
        assert not state.must_answer

    def test_held_marker_sees_what_is_learnt(self) -> None:
        state = Subscription(CLUSTER)
        unknown = state.held_marker()
        state.held = AB.resources
        assert state.held_marker() != unknown
