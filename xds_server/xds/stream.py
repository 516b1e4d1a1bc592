"""What SotW and delta ADS streams share: the event loop, node memory, per-type state.

A stream waits on one queue fed by two sources: the client's requests (read by
a task of its own) and the cache's change notices (coalesced: one pending
notice at most). After each event it plans every type in push order and sends
what changed, keeping at most one unanswered response per type; whatever
arrived meanwhile is folded into the next plan when the ACK comes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Generic, Protocol, TypeVar

import grpc
import structlog

from xds_server.lenient import Unparsable
from xds_server.xds.cache import PlanMemo, SnapshotCache
from xds_server.xds.resources import (
    CLUSTER,
    ENDPOINT,
    PUSH_ORDER,
    SHORT_NAMES,
    ResourceSet,
)
from xds_server.xds.status import NodeRecord, NodeRegistry, Sync, TypeView
from xds_server.xds.subscription import (
    Change,
    Known,
    Outcome,
    Pending,
    Settlement,
    Subscription,
    sent,
)

log = structlog.get_logger(__name__)

_WAKE = object()
_END = object()
# Requests read ahead of processing, at most: a client that floods requests
# while not reading responses is slowed by gRPC flow control, not buffered.
MAX_QUEUED_REQUESTS = 64
# Kubernetes names reach 253; ids are kept, logged and listed, so no megabytes.
MAX_NODE_NAME = 1024


class ProtocolError(Exception):
    """The client broke the protocol; the stream ends with this status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


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
    """One ADS stream; ``protocol`` makes it SotW or delta."""

    def __init__(
        self,
        protocol: StreamMode[S],
        cache: SnapshotCache,
        registry: NodeRegistry,
        peer: str,
        admit_node: Callable[[str], None] = lambda _node_id: None,
    ) -> None:
        self.protocol = protocol
        self.mode = protocol.name
        self.cache = cache
        self.registry = registry
        self.peer = peer
        # Vets the node id before the node is registered (certificate match,
        # per-identity limit); raises ProtocolError to end the stream.
        self.admit_node = admit_node
        self.node: NodeRecord | None = None
        self.types = {type_url: protocol.subscription(type_url) for type_url in PUSH_ORDER}
        self.plans = PlanMemo(cache, self.types)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._drained = asyncio.Event()
        self._drained.set()
        self._woken = False
        self._nonces = itertools.count(1)
        # sync() is asked for by every waiter, often: computed once per event.
        self._sync: Sync | None = None
        self._sync_generation = -1
        # Per type, the fleet board's serialised CSDS part and what it showed
        # (``xds_server.xds.csds.posted_config``).
        self.posted_parts: dict[str, tuple[object, bytes]] = {}

    # --- event loop ----------------------------------------------------------

    def wake(self) -> None:
        if not self._woken:
            self._woken = True
            self._queue.put_nowait(_WAKE)

    async def run(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        reader = asyncio.create_task(self._read(requests))
        unwatch = self.cache.watch(self.wake)
        try:
            while True:
                item = await self._queue.get()
                if self._queue.qsize() <= MAX_QUEUED_REQUESTS // 2:
                    self._drained.set()
                if item is _END:
                    return
                if isinstance(item, ProtocolError):
                    raise item
                self._sync = None  # anything that happens may change it
                if item is _WAKE:
                    self._woken = False
                else:
                    self._identify(item)
                    log.debug(
                        "xds.request",
                        node=self.node_id,
                        type=SHORT_NAMES.get(item.type_url, item.type_url[:100]),
                        nonce=item.response_nonce,
                        nack=bool(item.error_detail.message),
                        mode=self.mode,
                    )
                    self._handle(item)
                for response in self._responses():
                    await context.write(response)
                self._report_sync()
        except ProtocolError as error:
            log.warning("xds.protocol_error", peer=self.peer, mode=self.mode, error=str(error))
            await context.abort(error.code, str(error))
        finally:
            unwatch()
            reader.cancel()
            if self.node is not None:
                self.registry.disconnect(self.node, self)
                log.info("xds.disconnected", node=self.node.node_id, mode=self.mode)

    async def _read(self, requests: AsyncIterator[Any]) -> None:
        try:
            async for request in requests:
                if isinstance(request, Unparsable):
                    # Ends the stream once the requests before it are handled.
                    self._queue.put_nowait(
                        ProtocolError(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"a request is not a valid {request.message_type} ({request.error})",
                        )
                    )
                    return
                self._queue.put_nowait(request)
                if self._queue.qsize() >= MAX_QUEUED_REQUESTS:
                    self._drained.clear()
                    await self._drained.wait()
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        finally:
            self._queue.put_nowait(_END)

    def _identify(self, request: Any) -> None:
        """Remember the node from the stream's first request (it may come only there)."""
        if self.node is not None:
            return
        if not request.node.id:
            raise ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT, "the first request of a stream must carry node.id"
            )
        if max(len(request.node.id), len(request.node.cluster)) > MAX_NODE_NAME:
            raise ProtocolError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node.id and node.cluster must be at most {MAX_NODE_NAME} characters: "
                "they are logged and listed in `xdsctl status`",
            )
        self.admit_node(request.node.id)
        self.node = self.registry.connect(request.node.id, request.node.cluster, self)
        log.info("xds.connected", node=request.node.id, peer=self.peer, mode=self.mode)

    def _handle(self, request: Any) -> None:
        """Apply a request to its type's subscription, and record what it settled."""
        state = self.types.get(request.type_url)
        if state is None:
            log.info("xds.unknown_type", node=self.node_id, type_url=request.type_url[:200])
            return
        outcome = self.protocol.on_request(state, request, self.cache)
        if outcome.stale:
            log.debug("xds.stale_nonce", node=self.node_id, nonce=request.response_nonce)
        if outcome.settled is not None:
            self._record(state.type_url, outcome.settled)
        self.plans.forget(state.type_url)

    @property
    def node_id(self) -> str:
        return self.node.node_id if self.node else ""

    def next_nonce(self) -> str:
        return str(next(self._nonces))

    # --- planning --------------------------------------------------------------

    def target(self, state: Subscription) -> ResourceSet | None:
        """What this node should hold next for this type; None: nothing to send yet."""
        return self.plans.target(state.type_url)

    def _responses(self) -> list[bytes]:
        responses = []
        for type_url in PUSH_ORDER:
            state = self.types[type_url]
            if state.pending is not None:
                continue
            target = self.target(state)
            if target is None or self._rejected(type_url, target):
                continue
            held = state.held_marker()
            change = self.protocol.respond(state, target)
            if state.held_marker() != held:
                self.plans.forget(type_url)  # respond learnt what the node holds
            if change is None:
                continue
            pending = Pending(self.next_nonce(), target, *change, self.cache.published_at)
            sent(state, pending)
            if self.node is not None:
                self.registry.response(self.node, type_url)
            log.debug(
                "xds.response",
                node=self.node_id,
                type=SHORT_NAMES[type_url],
                version=target.version,
                nonce=state.last_nonce,
                mode=self.mode,
            )
            responses.append(self.protocol.encode(pending))
        return responses

    def _rejected(self, type_url: str, target: ResourceSet) -> bool:
        """Whether the node NACKed this very version before (never send it again)."""
        return self.node is not None and target.version in self.registry.rejected(
            self.node, type_url
        )

    def _record(self, type_url: str, settled: Settlement) -> None:
        """Tell the registry how the node answered a response (a NACK: never resend it)."""
        # A response is pending only once a request named the node.
        assert self.node is not None
        pending = settled.pending
        if settled.error:
            self.registry.nack(self.node, type_url, pending.target.version, settled.error)
            return
        latency = time.time() - pending.published_at
        self.registry.ack(self.node, type_url, pending.target.version, latency)
        log.debug(
            "xds.ack",
            node=self.node_id,
            type=SHORT_NAMES[type_url],
            version=pending.target.version,
            nonce=pending.nonce,
        )

    # --- status --------------------------------------------------------------------

    def _required(self) -> list[str]:
        """The types a fully configured node must hold (EDS only if a cluster uses it)."""
        snapshot = self.cache.snapshot
        needs_eds = snapshot is not None and snapshot.needs_eds
        return [t for t in PUSH_ORDER if t != ENDPOINT or needs_eds]

    def _report_sync(self) -> None:
        """Tell the registry whether this stream is in sync now (cheap while a push is on)."""
        if self.node is None:
            return
        busy = any(state.pending is not None for state in self.types.values())
        self.registry.set_synced(self, not busy and self.sync().in_sync)

    def sync(self) -> Sync:
        """Whether this node holds the current config at its final stage, and if not why."""
        if self._sync is None or self._sync_generation != self.cache.generation:
            self._sync = self._compute_sync()
            self._sync_generation = self.cache.generation
        return self._sync

    def _compute_sync(self) -> Sync:
        snapshot = self.cache.snapshot
        if snapshot is None:
            return Sync(False, "the server has no config yet")
        for type_url in self._required():
            state = self.types[type_url]
            short = SHORT_NAMES[type_url]
            if not state.requested:
                return Sync(False, f"has not asked for {short} yet")
            target = self.target(state)
            if target is None:
                return Sync(False, f"{short} held back until its clusters are ACKed")
            if self._rejected(type_url, target):
                nack = self.node.last_nack.get(type_url) if self.node else None
                message = nack.message if nack else "rejected"
                return Sync(False, f"NACKed {short} {target.version}: {message}", rejected=True)
            if state.pending is not None or target.version != state.held_version:
                return Sync(False, f"has not ACKed {short} {target.version} yet")
            if type_url == CLUSTER and target.version != snapshot.clusters.version:
                return Sync(False, "cds still holds old clusters while routes move")
        return Sync(True)

    def type_views(self) -> list[TypeView]:
        views = []
        for type_url in PUSH_ORDER:
            state = self.types[type_url]
            target = self.target(state) if state.requested else None
            current = target.version if target is not None else ""
            views.append(TypeView(type_url, state.held_version, current))
        return views
