"""Incremental ADS (``DeltaAggregatedResources``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.resources import WILDCARD_TYPES, ResourceSet, delta_response
from xds_server.xds.stream import AdsStream, Pending, TypeState


@dataclass
class DeltaTypeState(TypeState):
    held: dict = field(default_factory=dict)  # never unknown: delta reports names
    # Versions the node reported on (re)connect, for those this process never built.
    reported: dict[str, str] = field(default_factory=dict)
    # Names (re-)subscribed since the last response: sent even if unchanged.
    resend: set[str] = field(default_factory=set)


class DeltaStream(AdsStream):
    """Responses carry only what changed, and the names removed."""

    mode = "delta"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.types = {t: DeltaTypeState(t) for t in self.types}

    def on_request(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        state = self.known_type(request.type_url)
        if state is None:
            return
        assert isinstance(state, DeltaTypeState)
        subscribe = set(request.resource_names_subscribe)
        unsubscribe = set(request.resource_names_unsubscribe)
        if not state.requested:
            state.requested = True
            state.wildcard = request.type_url in WILDCARD_TYPES and not subscribe
            # What the node already holds (on a reconnect): no response for it
            # unless it changed. A version never built here stays unknown.
            state.reported = dict(request.initial_resource_versions)
            state.held = {
                name: self.cache.known_resource(request.type_url, name, version)
                for name, version in state.reported.items()
            }
            # A node that holds nothing waits for a first response to finish
            # initialising, even an empty one.
            state.must_answer = not state.held
        else:
            state.resend |= subscribe - {"*"}
        if "*" in subscribe:
            state.wildcard = True
        if "*" in unsubscribe:
            state.wildcard = False
        state.names = (state.names | subscribe) - unsubscribe - {"*"}
        for name in unsubscribe:
            state.held.pop(name, None)
        if subscribe or unsubscribe:
            # What the node should hold moved: compare name by name next time.
            state.held_version = ""
        if request.response_nonce:
            error = request.error_detail.message if request.HasField("error_detail") else ""
            # A nonce that is not the pending one is stale: only its
            # subscription changes count.
            self.settle(state, request.response_nonce, error or "")

    def respond(self, state: TypeState, target: ResourceSet) -> tuple[bytes, Pending] | None:
        assert isinstance(state, DeltaTypeState)
        quiet = not state.resend and not state.must_answer
        if quiet and target.version == state.held_version:
            return None  # it holds exactly this set: no name by name walk over thousands
        if quiet and target.base and target.base == state.held_version:
            return self._step(state, target)
        held = state.held
        scope = target.names if state.wildcard else state.names & target.names
        for name in scope:
            # A version new to this process that is the one wanted: recognised.
            wanted = target.resources[name]
            if held.get(name) is None and state.reported.get(name) == wanted.version:
                held[name] = wanted
        changed = [
            target.resources[name]
            for name in sorted(scope)
            if name in state.resend
            or held.get(name) is None
            or held[name].version != target.resources[name].version
        ]
        removed = [
            name
            for name in sorted(held)
            if name not in target.names and (state.wildcard or name in state.names)
        ]
        state.resend.clear()
        if not changed and not removed and not state.must_answer:
            state.held_version = target.version  # it holds exactly the target
            return None
        nonce = self.next_nonce()
        pending = Pending(nonce=nonce, target=target, resources=changed, removed=removed)
        response = delta_response(state.type_url, target.version, nonce, changed, removed)
        return response, pending

    def _step(self, state: DeltaTypeState, target: ResourceSet) -> tuple[bytes, Pending] | None:
        """The node holds the set ``target`` was derived from: send what the derivation
        put in and took out, among the names it wants."""
        changed = [r for r in target.put if state.wildcard or r.name in state.names]
        removed = sorted(n for n in target.removed if n in state.held)
        if not changed and not removed:
            state.held_version = target.version
            return None
        nonce = self.next_nonce()
        pending = Pending(nonce=nonce, target=target, resources=changed, removed=removed)
        return delta_response(state.type_url, target.version, nonce, changed, removed), pending

    def accept(self, state: TypeState, pending: Pending) -> None:
        assert isinstance(state, DeltaTypeState)
        state.held.update({r.name: r for r in pending.resources})
        for name in pending.removed:
            state.held.pop(name, None)
        state.held_version = pending.target.version
