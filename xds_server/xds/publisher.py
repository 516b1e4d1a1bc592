"""Turns each committed world into the cache's current snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from xds_server.model.state import World
from xds_server.translate import TranslateOptions
from xds_server.xds.builder import SnapshotBuilder
from xds_server.xds.cache import SnapshotCache

log = structlog.get_logger(__name__)


class SnapshotPublisher:
    """Translate (the services that changed), serialise and publish: the step between
    the store and the streams."""

    def __init__(
        self,
        cache: SnapshotCache,
        options: TranslateOptions,
        after: Callable[[World, frozenset[str] | None], None] | None = None,
    ) -> None:
        self.cache = cache
        self.options = options
        self._builder = SnapshotBuilder(options)
        self._after = after or (lambda _world, _changed: None)

    async def publish(self, world: World, changed: frozenset[str] | None = None) -> None:
        """Make ``world`` current; ``changed``: the services that differ from the world
        published last (None: any may)."""
        started = time.perf_counter()
        self.cache.set_snapshot(self._builder.build(world, changed))
        log.debug(
            "xds.published",
            seconds=round(time.perf_counter() - started, 6),
            services=None if changed is None else len(changed),
        )
        self._after(world, changed)

    def problems(self, world: World) -> list[str]:
        """Why ``world``'s snapshot would break Envoy, if it would; built beside the
        published one (sharing translations: publishing that world next reuses them)."""
        check = SnapshotBuilder(self.options, self._builder.translations)
        return check.build(world).problems()
