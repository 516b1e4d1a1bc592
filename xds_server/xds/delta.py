"""Incremental ADS (``DeltaAggregatedResources``)."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.resources import Resource, ResourceSet, delta_response
from xds_server.xds.subscription import (
    Change,
    DeltaSubscription,
    Known,
    Outcome,
    Pending,
    delta_request,
)


def _version(resource: Resource | None) -> str | None:
    """A held resource's version; None for one never built here, which differs from all."""
    return resource.version if resource is not None else None


class DeltaMode:
    """Responses carry only what changed, and the names removed."""

    name = "delta"

    def subscription(self, type_url: str) -> DeltaSubscription:
        """A delta stream's state for one type."""
        return DeltaSubscription(type_url)

    def on_request(
        self,
        state: DeltaSubscription,
        request: discovery_pb2.DeltaDiscoveryRequest,
        known: Known,
    ) -> Outcome:
        """Apply a request (``xds_server.xds.subscription.delta_request``)."""
        return delta_request(state, request, known)

    def respond(self, state: DeltaSubscription, target: ResourceSet) -> Change | None:
        """What the node lacks of ``target`` and holds beyond it; None if nothing."""
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
            if name in state.resend or _version(held.get(name)) != target.resources[name].version
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
        return Change(changed, removed)

    def _step(self, state: DeltaSubscription, target: ResourceSet) -> Change | None:
        """The node holds the set ``target`` was derived from: send what the derivation
        put in and took out, among the names it wants."""
        changed = [r for r in target.put if state.wildcard or r.name in state.names]
        removed = sorted(n for n in target.removed if n in state.held)
        if not changed and not removed:
            state.held_version = target.version
            return None
        return Change(changed, removed)

    def encode(self, pending: Pending) -> bytes:
        """The serialised DeltaDiscoveryResponse: what changed, and the names removed."""
        target = pending.target
        return delta_response(
            target.type_url, target.version, pending.nonce, pending.resources, pending.removed
        )
