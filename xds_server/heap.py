"""Keep Python's cyclic garbage collector off the long-lived fleet state."""

from __future__ import annotations

import asyncio
import gc
import time

import structlog

log = structlog.get_logger(__name__)

SETTLE_SECONDS = 2.0
# A settle that also walks the frozen heap, at most this often without a reason.
FULL_SETTLE_SECONDS = 600.0


class HeapSettler:
    """Once activity settles, collect what is new and freeze what survives.

    Thousands of long-lived streams, channels and records, and the resources of
    thousands of services, make every older-generation collection walk all of
    them, in the middle of a push. Frozen objects are skipped by the collector
    (reference counting still frees them, and the snapshot's resources hold no
    cycles). So a settle collects only what was made since the last one: its
    cost follows the activity, not the size of the heap. Garbage cycles among
    older objects come from closed streams: after a disconnect (and at least
    every ``FULL_SETTLE_SECONDS`` of activity) a settle first unfreezes, so
    those are collected too. It runs only after activity: an idle server uses
    no CPU for it.
    """

    def __init__(self, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self._pending: asyncio.TimerHandle | None = None
        self._full = True  # the first settle walks everything
        self._last_full = 0.0

    def poke(self, full: bool = False) -> None:
        """Something changed (a snapshot, a connection): settle after a quiet spell;
        ``full``: something may have left garbage cycles among old objects."""
        self._full |= full
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(self.settle_seconds, self._settle)

    def _settle(self) -> None:
        self._pending = None
        now = time.monotonic()
        full = self._full or now - self._last_full >= FULL_SETTLE_SECONDS
        if full:
            gc.unfreeze()
            self._full, self._last_full = False, now
        collected = gc.collect()
        gc.freeze()
        # Not gc.get_freeze_count(): it walks the whole frozen heap.
        log.debug("heap.settled", full=full, collected=collected)

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
