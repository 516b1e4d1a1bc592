"""Keeps the published snapshot at the store's latest committed state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from xds_server.auth.tokens import TokenRecord
from xds_server.errors import StoreUnavailable
from xds_server.model.state import World
from xds_server.store.base import Store

log = structlog.get_logger(__name__)


class StateFollower:
    """Publishes the store's world whenever its change sequence moves past what was published.

    Every path that may have changed the state calls ``refresh``: this
    replica's own commits, change notices from other replicas, reconnects,
    periodic resyncs. Refreshes run one at a time and compare sequences, so
    the published world only ever moves forward, whatever order they come in.
    """

    def __init__(
        self,
        store: Store,
        publish: Callable[[World], Awaitable[None]],
        on_tokens: Callable[[tuple[TokenRecord, ...]], None] = lambda _tokens: None,
    ) -> None:
        self._store = store
        self._publish = publish
        # Tokens move with the change sequence too: a revocation reaches every
        # replica by the same notice as a traffic change.
        self._on_tokens = on_tokens
        self._lock = asyncio.Lock()
        self.sequence = -1  # of the world last published; -1: none yet
        self.world: World | None = None  # the world last published

    async def refresh(self) -> None:
        async with self._lock:
            if await self._store.sequence() <= self.sequence:
                return
            world, sequence = await self._store.load_versioned()
            # Tokens first: a revocation must not wait for the world's publication.
            self._on_tokens(await self._store.tokens())
            await self._publish(world)
            log.debug("store.published", sequence=sequence, previous=self.sequence)
            self.sequence, self.world = sequence, world

    async def after_commit(self) -> None:
        """The operator API committed a change: publish it before the call returns."""
        try:
            await self.refresh()
        except StoreUnavailable as error:
            # Committed, but the read back failed: the follower catches up
            # when the database answers again; the call itself succeeded.
            log.warning("store.refresh_failed", error=str(error))
