"""State-of-the-world ADS (``StreamAggregatedResources``)."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.resources import ResourceSet
from xds_server.xds.stream import AdsStream
from xds_server.xds.subscription import Outcome, Pending, Subscription, sotw_request


class SotwStream(AdsStream):
    """Every response is the whole set for the type (or the requested names)."""

    mode = "sotw"

    def on_request(self, state: Subscription, request: discovery_pb2.DiscoveryRequest) -> Outcome:
        return sotw_request(state, request, self.cache)

    def respond(self, state: Subscription, target: ResourceSet) -> tuple[bytes, Pending] | None:
        if target.version == state.held_version:
            # The node holds exactly this set; if its version was new to this
            # process (another process built it), now its content is known.
            if state.held is None:
                state.held = target.resources
            if not state.must_answer:
                return None
        nonce = self.next_nonce()
        pending = Pending(nonce=nonce, target=target, resources=list(target.resources.values()))
        return target.sotw_response(nonce), pending
