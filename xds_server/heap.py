"""Keep Python's cyclic garbage collector off the long-lived fleet state."""

from __future__ import annotations

import asyncio
import gc

import structlog

log = structlog.get_logger(__name__)

SETTLE_SECONDS = 2.0


class HeapSettler:
    """Once activity settles, collect once and freeze what survives.

    Thousands of long-lived streams, channels and records make every older-
    generation collection walk all of them, in the middle of a push. Frozen
    objects are skipped by the collector (reference counting still frees
    them). Each settle first unfreezes, so garbage cycles among older objects
    (a closed stream's) are still collected, once per burst of activity. It
    runs only after activity: an idle server uses no CPU for it.
    """

    def __init__(self, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.settle_seconds = settle_seconds
        self._pending: asyncio.TimerHandle | None = None

    def poke(self) -> None:
        """Something changed (a snapshot, a connection): settle after a quiet spell."""
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(self.settle_seconds, self._settle)

    def _settle(self) -> None:
        self._pending = None
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        log.debug("heap.settled", collected=collected, frozen=gc.get_freeze_count())

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
