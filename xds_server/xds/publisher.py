"""Turns each committed world into the cache's current snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from xds_server.model.state import World
from xds_server.translate import TranslateOptions
from xds_server.xds.cache import SnapshotCache
from xds_server.xds.snapshot import snapshot_of

log = structlog.get_logger(__name__)


class SnapshotPublisher:
    """Translate, serialise and publish: the step between the store and the streams."""

    def __init__(
        self,
        cache: SnapshotCache,
        options: TranslateOptions,
        after: Callable[[World], None] | None = None,
    ) -> None:
        self.cache = cache
        self.options = options
        self._after = after or (lambda _world: None)

    async def publish(self, world: World) -> None:
        started = time.perf_counter()
        self.cache.set_snapshot(snapshot_of(world, self.options))
        log.debug("xds.published", seconds=round(time.perf_counter() - started, 6))
        self._after(world)
