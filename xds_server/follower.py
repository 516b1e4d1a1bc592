"""Keeps the published snapshot at the store's latest committed state."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from xds_server.auth.tokens import TokenRecord
from xds_server.errors import StateError, XdsServerError
from xds_server.model.invariants import summary, world_problems
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
        """Publish the store's latest world if it moved on; raises what went wrong.

        The first world (at start-up) is checked against every rule first: a
        server refuses to serve a state that breaks one (``StateError``), and
        its Envoys keep their last config, rather than being sent a broken one.
        """
        async with self._lock:
            if await self._store.sequence() <= self.sequence:
                return
            world, sequence = await self._store.load_versioned()
            if self.world is None:
                _refuse_to_serve(world, self._store.where)
            # Tokens first: a revocation must not wait for the world's publication.
            self._on_tokens(await self._store.tokens())
            await self._publish(world)
            log.debug("store.published", sequence=sequence, previous=self.sequence)
            self.sequence, self.world = sequence, world

    async def catch_up(self) -> None:
        """``refresh`` where failing is not an option (a commit already answered, a change
        notice): the published world stays as it was and the next notice tries again."""
        try:
            await self.refresh()
        except XdsServerError as error:
            log.warning("store.refresh_failed", error=str(error))


def _refuse_to_serve(world: World, where: str) -> None:
    problems = world_problems(world)
    if problems:
        raise StateError(
            f"the state in {where} breaks these rules, so this server will not serve it "
            f"(Envoys keep their last config): {summary(problems)}; restore a good export "
            "with `xdsctl state import --replace` on a server with a new --state"
        )
