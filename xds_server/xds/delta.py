"""Incremental ADS (``DeltaAggregatedResources``)."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.resources import ResourceSet, delta_response
from xds_server.xds.stream import AdsStream
from xds_server.xds.subscription import (
    DeltaSubscription,
    Outcome,
    Pending,
    Subscription,
    delta_request,
)


class DeltaStream(AdsStream):
    """Responses carry only what changed, and the names removed."""

    mode = "delta"

    subscription = DeltaSubscription

    def on_request(
        self, state: Subscription, request: discovery_pb2.DeltaDiscoveryRequest
    ) -> Outcome:
        assert isinstance(state, DeltaSubscription)
        return delta_request(state, request, self.cache)

    def respond(self, state: Subscription, target: ResourceSet) -> tuple[bytes, Pending] | None:
        assert isinstance(state, DeltaSubscription)
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

    def _step(self, state: DeltaSubscription, target: ResourceSet) -> tuple[bytes, Pending] | None:
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
