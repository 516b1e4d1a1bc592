"""The node registry: per node what it accepted and rejected, whether it is in sync, and waiting.

Records are kept by node id across reconnects (a NACKed version is never
resent, whichever stream asks). A node whose last stream closed stays listed
as disconnected for a grace period, then is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import structlog

from xds_server.xds.resources import SHORT_NAMES


class XdsEvent(StrEnum):
    """What the registry tells its listener (metrics, the heap settler) about the fleet."""

    CONNECT = "connect"  # kind: the stream's mode
    DISCONNECT = "disconnect"  # kind: the stream's mode
    RESPONSE = "response"  # kind: the type URL sent
    ACK = "ack"  # kind: the type URL; seconds: from publishing to this ACK
    NACK = "nack"  # kind: the type URL


# (event, kind, node, seconds): see ``XdsEvent`` for what kind and seconds are.
XdsEventListener = Callable[[XdsEvent, str, str, float | None], None]

log = structlog.get_logger(__name__)

DEFAULT_GRACE_SECONDS = 60.0
WAIT_BATCH_SECONDS = 0.02


@dataclass(frozen=True)
class Sync:
    """Whether a node holds the current config; if not, why (and whether it rejected it)."""

    in_sync: bool
    reason: str = ""
    rejected: bool = False


@dataclass(frozen=True)
class TypeView:
    type_url: str
    acked: str
    current: str


class StreamView(Protocol):
    """What the registry needs from a live stream (its ``StreamReport`` provides it)."""

    mode: str
    peer: str

    def sync(self) -> Sync: ...

    def type_views(self) -> list[TypeView]: ...


@dataclass
class Nack:
    version: str
    message: str
    at: float


@dataclass
class NodeRecord:
    """One node: identity, its live streams, what it ACKed and rejected."""

    node_id: str
    cluster: str = ""
    # The newest change (the store's change sequence) this node held all of: what
    # `xdsctl status` shows it runs; 0 before it was first in sync.
    change: int = 0
    acked: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, set[str]] = field(default_factory=dict)
    last_nack: dict[str, Nack] = field(default_factory=dict)
    streams: list[StreamView] = field(default_factory=list)
    connected_since: float = 0.0
    disconnected_at: float | None = None

    @property
    def connected(self) -> bool:
        return bool(self.streams)

    @property
    def stream(self) -> StreamView | None:
        """The newest live stream (a node normally has one)."""
        return self.streams[-1] if self.streams else None

    def sync(self) -> Sync:
        stream = self.stream
        return stream.sync() if stream is not None else Sync(False, "disconnected")


@dataclass(frozen=True)
class WaitResult:
    done: bool
    seconds: float
    envoys: int
    lagging: list[tuple[NodeRecord, Sync]]


class NodeRegistry:
    """ACK and NACK records by node id, shared by every stream; wakes waiters on any news."""

    def __init__(
        self,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        on_event: XdsEventListener | None = None,
    ) -> None:
        self._nodes: dict[str, NodeRecord] = {}
        # Live streams not known to be in sync: waiting is O(1) per look, not O(nodes).
        self._unsynced: set[StreamView] = set()
        # NACKs ever recorded, and how many there were when the current snapshot came:
        # each waiter compares them with its own count (see ``wait_for_sync``).
        self._nacks = 0
        self._nacks_before_snapshot = 0
        self.grace_seconds = grace_seconds
        self._news = asyncio.Event()
        self._listening = 0  # waiters blocked on _news
        self._connected_count = 0  # nodes with at least one live stream
        self.changes = 0  # bumped by every event that may change a node's status
        self._on_event: XdsEventListener = on_event or (lambda *_: None)
        # The change the current snapshot was built from.
        self.change = 0

    def _notify(self) -> None:
        self.changes += 1
        # Called for every ACK: only worth a new Event when someone listens.
        if self._listening:
            self._news.set()
            self._news = asyncio.Event()

    def notify(self, change: int = 0) -> None:
        """A new snapshot (built from ``change``): no stream is in sync with it until it
        says so again."""
        self.change = change
        self._unsynced = {stream for r in self._nodes.values() for stream in r.streams}
        self._nacks_before_snapshot = self._nacks
        self._notify()

    @property
    def out_of_sync(self) -> int:
        """How many streams do not hold the current config yet (O(1): /metrics asks)."""
        return len(self._unsynced)

    def set_synced(self, record: NodeRecord, stream: StreamView, synced: bool) -> None:
        """``stream``'s verdict after it handled an event (see ``StreamReport``); in sync,
        its node ``record`` runs the current change."""
        if synced:
            record.change = self.change
            if stream in self._unsynced:
                self._unsynced.discard(stream)
                self._notify()
        elif stream not in self._unsynced:
            self._unsynced.add(stream)
            self.changes += 1

    def connect(self, node_id: str, cluster: str, stream: StreamView) -> NodeRecord:
        record = self._nodes.setdefault(node_id, NodeRecord(node_id=node_id))
        record.cluster = cluster
        if not record.streams:
            record.connected_since = time.time()
            self._connected_count += 1
        record.streams.append(stream)
        self._unsynced.add(stream)
        record.disconnected_at = None
        self._on_event(XdsEvent.CONNECT, stream.mode, node_id, None)
        self._notify()
        return record

    def disconnect(self, record: NodeRecord, stream: StreamView) -> None:
        if stream in record.streams:
            record.streams.remove(stream)
            if not record.streams:
                self._connected_count -= 1
        self._unsynced.discard(stream)
        if not record.streams:
            record.disconnected_at = time.time()
        self._on_event(XdsEvent.DISCONNECT, stream.mode, record.node_id, None)
        self._notify()

    def get(self, node_id: str) -> NodeRecord | None:
        return self._nodes.get(node_id)

    def response(self, record: NodeRecord, type_url: str) -> None:
        self._on_event(XdsEvent.RESPONSE, type_url, record.node_id, None)

    def ack(self, record: NodeRecord, type_url: str, version: str, seconds: float) -> None:
        record.acked[type_url] = version
        self._on_event(XdsEvent.ACK, type_url, record.node_id, seconds)
        self._notify()

    def nack(self, record: NodeRecord, type_url: str, version: str, message: str) -> None:
        """Remember the rejection, so that version is never sent to this node again."""
        record.rejected.setdefault(type_url, set()).add(version)
        record.last_nack[type_url] = Nack(version=version, message=message, at=time.time())
        self._nacks += 1
        log.warning(
            "xds.nack",
            node=record.node_id,
            type=SHORT_NAMES.get(type_url, type_url),
            version=version,
            error=message,
        )
        self._on_event(XdsEvent.NACK, type_url, record.node_id, None)
        self._notify()

    def rejected(self, record: NodeRecord, type_url: str) -> set[str]:
        return record.rejected.get(type_url, set())

    def nodes(self) -> list[NodeRecord]:
        """Connected nodes and those disconnected within the grace period, by id."""
        cutoff = time.time() - self.grace_seconds
        for node_id, record in list(self._nodes.items()):
            if record.disconnected_at is not None and record.disconnected_at < cutoff:
                del self._nodes[node_id]
        return sorted(self._nodes.values(), key=lambda r: r.node_id)

    def connected(self) -> list[NodeRecord]:
        return [r for r in self.nodes() if r.connected]

    async def wait_for_sync(self, timeout: float, min_envoys: int = 0) -> WaitResult:
        """Until every connected node is in sync (and at least ``min_envoys`` are), a node
        rejected the current config (before the wait began or during it), or ``timeout``
        passed."""
        started = time.monotonic()
        # The NACK count this waiter last looked at. Its own, not a shared flag: another
        # waiter looking, or a new one starting, must not hide a NACK from this one. It
        # starts at the count before the current snapshot, so a NACK that came after
        # it but before this wait is looked at too.
        nacks_seen = self._nacks_before_snapshot
        while True:
            elapsed = time.monotonic() - started
            envoys = self._connected_count
            if not self._unsynced and envoys >= min_envoys:
                return WaitResult(True, elapsed, envoys, [])
            # Only after a NACK: looking is O(streams not in sync).
            rejected = nacks_seen != self._nacks and self._any_rejected()
            nacks_seen = self._nacks
            remaining = timeout - elapsed
            if remaining <= 0 or rejected:
                return WaitResult(False, elapsed, envoys, self._lagging())
            news = self._news
            self._listening += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(news.wait(), min(remaining, 1.0))
            finally:
                self._listening -= 1
            # ACKs come in bursts (one per node): look again once per batch,
            # not once per ACK.
            await asyncio.sleep(min(WAIT_BATCH_SECONDS, max(remaining, 0)))

    def _any_rejected(self) -> bool:
        return any(stream.sync().rejected for stream in self._unsynced)

    def _lagging(self) -> list[tuple[NodeRecord, Sync]]:
        """Every connected node not in sync, with why."""
        return [(r, s) for r in self.connected() if not (s := r.sync()).in_sync]
