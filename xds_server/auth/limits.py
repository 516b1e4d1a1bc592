"""Limits that keep one client from starving the others: calls (streams) in flight per
connection, per peer address and per identity, and a write rate per identity.

grpcio's own ``max_concurrent_streams`` only makes extra streams wait; these
refuse them (RESOURCE_EXHAUSTED) with a message naming the limit and its flag.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from xds_server.errors import LimitExceeded


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer: ``ipv4:10.0.0.1:5000`` → ``10.0.0.1``,
    ``ipv6:[::1]:5000`` → ``::1``; other forms (unix sockets) stay whole."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return peer


@dataclass(frozen=True)
class StreamLimits:
    """At most this many streams (calls in flight) at once; ``flag`` names the knob prefix."""

    per_connection: int
    per_peer: int
    per_identity: int
    flag: str


# For servers built in tests without limits.
UNLIMITED = StreamLimits(2**62, 2**62, 2**62, "--limits")


@dataclass
class StreamLease:
    """One admitted stream; ``release`` when it ends (idempotent)."""

    counter: StreamCounter
    keys: list[tuple[str, str]] = field(default_factory=list)

    def add(self, scope: str, key: str, limit: int, what: str) -> None:
        self.counter.take(self, scope, key, limit, what)

    def add_identity(self, identity: str) -> None:
        limits = self.counter.limits
        self.add("identity", identity, limits.per_identity, f"identity {identity}")

    def release(self) -> None:
        for scope_key in self.keys:
            self.counter.give_back(scope_key)
        self.keys.clear()


class StreamCounter:
    """Counts streams in flight per connection, peer address and identity."""

    def __init__(self, limits: StreamLimits, kind: str) -> None:
        self.limits = limits
        self.kind = kind  # what a refusal calls the streams: "xDS streams", "API calls"
        self._open: Counter[tuple[str, str]] = Counter()

    def open(self, peer: str) -> StreamLease:
        """Admit a stream from ``peer`` (a gRPC peer string: one per connection)."""
        lease = StreamLease(self)
        try:
            lease.add("connection", peer, self.limits.per_connection, f"connection {peer}")
            host = peer_host(peer)
            lease.add("peer", host, self.limits.per_peer, f"peer {host}")
        except LimitExceeded:
            lease.release()
            raise
        return lease

    def take(self, lease: StreamLease, scope: str, key: str, limit: int, what: str) -> None:
        """Count one more stream for ``key`` in ``scope`` on ``lease``, or refuse it."""
        scope_key = (scope, key)
        if self._open[scope_key] >= limit:
            raise LimitExceeded(
                f"too many {self.kind} from {what} (limit {limit}): close some, "
                f"or raise {self.limits.flag}-per-{scope}"
            )
        self._open[scope_key] += 1
        lease.keys.append(scope_key)

    def give_back(self, scope_key: tuple[str, str]) -> None:
        """One stream fewer; keys at zero are dropped, so the table stays small."""
        self._open[scope_key] -= 1
        if self._open[scope_key] <= 0:
            del self._open[scope_key]


class WriteRateLimiter:
    """A token bucket per identity: ``burst`` writes at once, refilled at ``per_second``."""

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # identity → (level, at)

    def spend(self, identity: str, now: float | None = None) -> None:
        """Take one write from ``identity``'s bucket, or refuse with when to retry."""
        now = time.monotonic() if now is None else now
        level, at = self._buckets.get(identity, (float(self.burst), now))
        level = min(float(self.burst), level + (now - at) * self.per_second)
        if level < 1.0:
            wait = (1.0 - level) / self.per_second
            self._buckets[identity] = (level, now)
            raise LimitExceeded(
                f"too many writes from {identity} (at most {self.per_second:g}/s after a burst "
                f"of {self.burst}): retry in {wait:.1f}s, or raise --api-write-rate; "
                "nothing was changed"
            )
        self._buckets[identity] = (level - 1.0, now)
