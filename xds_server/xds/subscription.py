"""One resource type on one ADS stream: what the node asked for and holds, and the
SotW and delta request rules that change it.

Pure: no I/O, no asyncio. A request goes in; what it subscribed, unsubscribed
and settled comes out. The stream hands a settled response (``Settlement``) to
its ledger, which tells the node registry; this module only keeps the state
straight.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.resources import WILDCARD_TYPES, Resource, ResourceSet

# The explicit wildcard name; an empty first request for a wildcard type is the
# legacy form of the same.
WILDCARD = "*"


@dataclass
class Pending:
    """A response sent and not yet ACKed or NACKed."""

    nonce: str
    target: ResourceSet
    resources: list[Resource]
    removed: list[str] = field(default_factory=list)
    # When the snapshot behind it was published: ACK time minus this is the
    # change-to-ACK latency.
    published_at: float = 0.0


class Change(NamedTuple):
    """What a response carries: resources to send, and (delta) names removed."""

    resources: list[Resource]
    removed: list[str]


@dataclass
class Subscription:
    """One resource type on one stream."""

    type_url: str
    requested: bool = False
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    # What the node holds: name → Resource (None: a version never built
    # here). None as a whole: unknown (SotW reported an unknown version).
    held: Mapping[str, Resource | None] | None = None
    held_version: str = ""
    pending: Pending | None = None
    last_nonce: str = ""
    # Answer the next plan even if the node already holds it (a re-request).
    must_answer: bool = False

    def held_marker(self) -> tuple[bool, str, int]:
        """Enough of what the node holds to see a response step learn something about it."""
        return (self.held is None, self.held_version, len(self.held or ()))


@dataclass
class DeltaSubscription(Subscription):
    """A delta stream's subscription: the node reports names, so ``held`` is never unknown."""

    held: dict[str, Resource | None] = field(default_factory=dict)
    # Versions the node reported on (re)connect, for those this process never built.
    reported: dict[str, str] = field(default_factory=dict)
    # Names (re-)subscribed since the last response: sent even if unchanged.
    resend: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Settlement:
    """How the node answered the pending response: an ACK, or a NACK with ``error``."""

    pending: Pending
    error: str = ""


@dataclass(frozen=True)
class Outcome:
    """What one request settled (if anything), and whether it was stale (SotW)."""

    settled: Settlement | None = None
    stale: bool = False


class Known(Protocol):
    """The snapshot cache's memory of versions it built, to recognise what a node reports."""

    def known_set(self, type_url: str, version: str) -> ResourceSet | None:
        """The set built with that version, if remembered."""

    def known_resource(self, type_url: str, name: str, version: str) -> Resource | None:
        """The resource built with that name and version, if remembered."""


def sent(state: Subscription, pending: Pending) -> None:
    """A response went out: it is in flight, and its nonce is the one to answer."""
    state.pending = pending
    state.last_nonce = pending.nonce
    state.must_answer = False


def _error(request: discovery_pb2.DiscoveryRequest | discovery_pb2.DeltaDiscoveryRequest) -> str:
    """A request's NACK message: a NACK is told by ``error_detail``, not by its version."""
    return request.error_detail.message if request.HasField("error_detail") else ""


def _settle(state: Subscription, nonce: str, error: str) -> Settlement | None:
    """The pending response, if ``nonce`` answers it (no longer pending then)."""
    pending = state.pending
    if pending is None or nonce != pending.nonce:
        return None
    state.pending = None
    return Settlement(pending, error)


# --- state of the world ------------------------------------------------------------


def sotw_request(
    state: Subscription, request: discovery_pb2.DiscoveryRequest, known: Known
) -> Outcome:
    """Apply a SotW request for ``state``'s type: its names, and the ACK or NACK it carries."""
    names = set(request.resource_names) - {WILDCARD}
    if not state.requested:
        # First request for this type on this stream: adopt what the node
        # says it holds, so a reconnect to identical config sends nothing.
        state.requested = True
        state.wildcard = state.type_url in WILDCARD_TYPES and not names
        state.names = names
        _adopt_reported(state, request.version_info, known)
        return Outcome()
    if request.response_nonce != state.last_nonce:
        # Stale: a newer response is on its way; the spec says ignore it.
        return Outcome(stale=True)
    settled = _settle(state, request.response_nonce, _error(request))
    if settled is not None and not settled.error:
        # Sets are immutable: a node holding one shares its map, no copy per node.
        state.held = settled.pending.target.resources
        state.held_version = settled.pending.target.version
    if names != state.names and not state.wildcard:
        state.names = names
        state.must_answer = True
    elif settled is None:
        # The latest nonce again, with nothing pending: a fresh request
        # (Envoy re-requests EDS after a cluster change). Always answer.
        state.must_answer = True
    return Outcome(settled)


def _adopt_reported(state: Subscription, version: str, known: Known) -> None:
    state.held_version = version
    if not version:
        state.held = {}
        return
    found = known.known_set(state.type_url, version)
    state.held = found.resources if found is not None else None


# --- delta --------------------------------------------------------------------------


def delta_request(
    state: DeltaSubscription, request: discovery_pb2.DeltaDiscoveryRequest, known: Known
) -> Outcome:
    """Apply a delta request for ``state``'s type: what it (un)subscribes, and the ACK or
    NACK it carries."""
    subscribe = set(request.resource_names_subscribe)
    unsubscribe = set(request.resource_names_unsubscribe)
    if not state.requested:
        _first_delta(state, subscribe, request.initial_resource_versions, known)
    else:
        state.resend |= subscribe - {WILDCARD}
    if WILDCARD in subscribe:
        state.wildcard = True
    if WILDCARD in unsubscribe:
        state.wildcard = False
    state.names = (state.names | subscribe) - unsubscribe - {WILDCARD}
    for name in unsubscribe:
        state.held.pop(name, None)
    if subscribe or unsubscribe:
        # What the node should hold moved: compare name by name next time.
        state.held_version = ""
    if not request.response_nonce:
        return Outcome()
    # A nonce that is not the pending one is stale: only its subscription changes count.
    settled = _settle(state, request.response_nonce, _error(request))
    if settled is not None and not settled.error:
        pending = settled.pending
        state.held.update({r.name: r for r in pending.resources})
        for name in pending.removed:
            state.held.pop(name, None)
        state.held_version = pending.target.version
    return Outcome(settled)


def _first_delta(
    state: DeltaSubscription, subscribe: set[str], initial: Mapping[str, str], known: Known
) -> None:
    state.requested = True
    state.wildcard = state.type_url in WILDCARD_TYPES and not subscribe
    # What the node already holds (on a reconnect): no response for it
    # unless it changed. A version never built here stays unknown.
    state.reported = dict(initial)
    state.held = {
        name: known.known_resource(state.type_url, name, version)
        for name, version in state.reported.items()
    }
    # A node that holds nothing waits for a first response to finish
    # initialising, even an empty one.
    state.must_answer = not state.held
