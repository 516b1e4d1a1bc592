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
        publish: Callable[[World, frozenset[str] | None], Awaitable[None]],
        on_tokens: Callable[[tuple[TokenRecord, ...]], None] = lambda _tokens: None,
    ) -> None:
        self._store = store
        # Publishes a world, given the services that changed (None: any may have).
        self._publish = publish
        # Tokens move with the change sequence too: a revocation reaches every
        # replica by the same notice as a traffic change.
        self._on_tokens = on_tokens
        self._lock = asyncio.Lock()
        self.sequence = -1  # of the world last published; -1: none yet
        # The sequence of the world being published (what the publish callback sees).
        self.publishing = -1
        self.world: World | None = None  # the world last published

    async def refresh(self, look: bool = True) -> None:
        """Publish the store's latest world if it moved on; raises what went wrong.

        ``look=False`` takes what the store already holds (after a commit made here)
        without asking the database. The first world (at start-up) is checked
        against every rule first: a server refuses to serve a state that breaks one
        (``StateError``), and its Envoys keep their last config, rather than being
        sent a broken one.
        """
        async with self._lock:
            update = await self._store.updates_since(self.sequence, look=look)
            if update.sequence <= self.sequence:
                return
            if self.world is None:
                _refuse_to_serve(update.world, self._store.where)
            if update.tokens or self.world is None:
                # Tokens first: a revocation must not wait for the world's publication.
                self._on_tokens(await self._store.tokens())
            self.publishing = update.sequence
            await self._publish(update.world, None if self.world is None else update.services)
            log.debug("store.published", sequence=update.sequence, previous=self.sequence)
            self.sequence, self.world = update.sequence, update.world

    async def after_commit(self) -> None:
        """A change committed here: publish it before the call returns."""
        await self._logged(look=False)

    async def catch_up(self) -> None:
        """A change notice, a reconnect, a resync: publish whatever the database has."""
        await self._logged(look=True)

    async def _logged(self, look: bool) -> None:
        # Failing is not an option here (a commit already answered, a notice): the
        # published world stays as it was and the next notice tries again.
        try:
            await self.refresh(look)
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
