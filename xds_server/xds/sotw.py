"""State-of-the-world ADS (``StreamAggregatedResources``)."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.resources import ResourceSet
from xds_server.xds.subscription import Change, Known, Outcome, Pending, Subscription, sotw_request


class SotwMode:
    """Every response is the whole set for the type (or the requested names)."""

    name = "sotw"

    def subscription(self, type_url: str) -> Subscription:
        """A SotW stream's state for one type."""
        return Subscription(type_url)

    def on_request(
        self, state: Subscription, request: discovery_pb2.DiscoveryRequest, known: Known
    ) -> Outcome:
        """Apply a request (``xds_server.xds.subscription.sotw_request``)."""
        return sotw_request(state, request, known)

    def respond(self, state: Subscription, target: ResourceSet) -> Change | None:
        """The whole of ``target``; None if the node holds it and did not ask again."""
        if target.version == state.held_version:
            # The node holds exactly this set; if its version was new to this
            # process (another process built it), now its content is known.
            if state.held is None:
                state.held = target.resources
            if not state.must_answer:
                return None
        return Change(list(target.resources.values()), [])

    def encode(self, pending: Pending) -> bytes:
        """The serialised DiscoveryResponse: the whole target set."""
        return pending.target.sotw_response(pending.nonce)
