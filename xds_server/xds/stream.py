"""One ADS stream's event loop, SotW or delta by the ``StreamMode`` it is given.

A stream waits on one inbox fed by two sources: the client's requests and the
cache's change notices. After each event it plans every type in push order and
sends what changed, keeping at most one unanswered response per type; whatever
arrived meanwhile is folded into the next plan when the ACK comes.

The jobs around the loop live in their own units: the inbox (queue and
back-pressure), admission (which node), subscription (per-type state and
request rules), the cache's plan memo, the ledger (ACK/NACK records) and the
report (sync status, what the registry and CSDS see).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Protocol, TypeVar

import grpc
import structlog

from xds_server.errors import ProtocolError
from xds_server.xds.admission import admit, depart
from xds_server.xds.cache import PlanMemo, SnapshotCache
from xds_server.xds.inbox import WAKE, Inbox
from xds_server.xds.ledger import AckLedger
from xds_server.xds.registry import NodeRegistry
from xds_server.xds.report import StreamReport
from xds_server.xds.resources import PUSH_ORDER, SHORT_NAMES, ResourceSet
from xds_server.xds.subscription import Change, Known, Outcome, Pending, Subscription, sent

log = structlog.get_logger(__name__)

S = TypeVar("S", bound=Subscription)


class StreamMode(Protocol[S]):
    """What differs between SotW and delta ADS (``SotwMode``, ``DeltaMode``)."""

    name: str

    def subscription(self, type_url: str) -> S:
        """A new per-type state of this protocol's kind."""

    def on_request(self, state: S, request: Any, known: Known) -> Outcome:
        """Apply a request to its type's subscription."""

    def respond(self, state: S, target: ResourceSet) -> Change | None:
        """What moves the node to ``target``; None if it holds it already."""

    def encode(self, pending: Pending) -> bytes:
        """The serialised response that carries ``pending``."""


class AdsStream(Generic[S]):
    """One ADS stream; ``mode`` makes it SotW or delta."""

    def __init__(
        self,
        mode: StreamMode[S],
        cache: SnapshotCache,
        registry: NodeRegistry,
        peer: str,
        admit_node: Callable[[str], None] = lambda _node_id: None,
    ) -> None:
        self.mode = mode
        self.cache = cache
        self.registry = registry
        # Vets the node id before the node is registered (see ``admission.admit``).
        self.admit_node = admit_node
        self.types = {type_url: mode.subscription(type_url) for type_url in PUSH_ORDER}
        self.inbox = Inbox()
        self.plans = PlanMemo(cache, self.types)
        self.ledger = AckLedger(registry)
        self.report = StreamReport(mode.name, peer, cache, self.types, self.plans, self.ledger)
        self._nonces = itertools.count(1)

    async def run(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Serve the stream until the client ends it or breaks the protocol."""
        reader = asyncio.create_task(self.inbox.read(requests))
        unwatch = self.cache.watch(self.inbox.wake)
        try:
            while (item := await self.inbox.next()) is not None:
                self.report.changed()  # anything that happens may change it
                if item is not WAKE:
                    self._handle(item)
                for response in self._responses():
                    await context.write(response)
                self.report.post()
        except ProtocolError as error:
            log.warning(
                "xds.protocol_error", peer=self.report.peer, mode=self.mode.name, error=str(error)
            )
            await context.abort(error.code, str(error))
        finally:
            unwatch()
            reader.cancel()
            if self.ledger.node is not None:
                depart(self.registry, self.ledger.node, self.report)

    def _handle(self, request: Any) -> None:
        """Apply a request to its type's subscription, and record what it settled."""
        if self.ledger.node is None:
            self.ledger.node = admit(request, self.admit_node, self.registry, self.report)
        node_id = self.ledger.node_id
        log.debug(
            "xds.request",
            node=node_id,
            type=SHORT_NAMES.get(request.type_url, request.type_url[:100]),
            nonce=request.response_nonce,
            nack=bool(request.error_detail.message),
            mode=self.mode.name,
        )
        state = self.types.get(request.type_url)
        if state is None:
            log.info("xds.unknown_type", node=node_id, type_url=request.type_url[:200])
            return
        outcome = self.mode.on_request(state, request, self.cache)
        if outcome.stale:
            # Stale: a newer response is on its way; the spec says ignore it.
            log.debug("xds.stale_nonce", node=node_id, nonce=request.response_nonce)
        if outcome.settled is not None:
            self.ledger.settled(state.type_url, outcome.settled)
        self.plans.forget(state.type_url)

    def _responses(self) -> list[bytes]:
        """A response per type that has none in flight and something new to send."""
        responses = []
        for type_url in PUSH_ORDER:
            response = self._response(self.types[type_url])
            if response is not None:
                responses.append(response)
        return responses

    def _response(self, state: S) -> bytes | None:
        if state.pending is not None:
            return None  # one unanswered response per type: the ACK brings the next plan
        target = self.plans.target(state.type_url)
        if target is None or self.ledger.rejected(state.type_url, target.version):
            return None
        held = state.held_marker()
        change = self.mode.respond(state, target)
        if state.held_marker() != held:
            self.plans.forget(state.type_url)  # respond learnt what the node holds
        if change is None:
            return None
        nonce = str(next(self._nonces))
        pending = Pending(nonce, target, *change, self.cache.published_at)
        sent(state, pending)
        self.ledger.sent(state.type_url)
        log.debug(
            "xds.response",
            node=self.ledger.node_id,
            type=SHORT_NAMES[state.type_url],
            version=target.version,
            nonce=nonce,
            mode=self.mode.name,
        )
        return self.mode.encode(pending)
