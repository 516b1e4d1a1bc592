"""State-of-the-world ADS (``StreamAggregatedResources``)."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from xds_server.xds.resources import WILDCARD_TYPES, ResourceSet
from xds_server.xds.stream import AdsStream, Pending, TypeState, log


class SotwStream(AdsStream):
    """Every response is the whole set for the type (or the requested names)."""

    mode = "sotw"

    def on_request(self, request: discovery_pb2.DiscoveryRequest) -> None:
        state = self.known_type(request.type_url)
        if state is None:
            return
        names = set(request.resource_names) - {"*"}
        if not state.requested:
            # First request for this type on this stream: adopt what the node
            # says it holds, so a reconnect to identical config sends nothing.
            state.requested = True
            state.wildcard = request.type_url in WILDCARD_TYPES and not names
            state.names = names
            self._adopt_reported(state, request.version_info)
            return
        if request.response_nonce != state.last_nonce:
            # Stale: a newer response is on its way; the spec says ignore it.
            log.debug("xds.stale_nonce", node=self.node_id, nonce=request.response_nonce)
            return
        error = request.error_detail.message if request.HasField("error_detail") else ""
        settled = self.settle(state, request.response_nonce, error or "")
        if names != state.names and not state.wildcard:
            state.names = names
            state.must_answer = True
        elif not settled:
            # The latest nonce again, with nothing pending: a fresh request
            # (Envoy re-requests EDS after a cluster change). Always answer.
            state.must_answer = True

    def _adopt_reported(self, state: TypeState, version: str) -> None:
        state.held_version = version
        if not version:
            state.held = {}
            return
        known = self.cache.known_set(state.type_url, version)
        # Sets are immutable: a node holding one shares its map, no copy per node.
        state.held = known.resources if known is not None else None

    def respond(self, state: TypeState, target: ResourceSet) -> tuple[bytes, Pending] | None:
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

    def accept(self, state: TypeState, pending: Pending) -> None:
        state.held = pending.target.resources
        state.held_version = pending.target.version
