"""The control plane's own hand on rollouts: each due step judged from this replica's
traffic windows, and the verdict committed like any write.

Every replica runs a driver (each counts every Envoy: one stats sink per replica). The
store's transaction is the lock: a judgement is applied only if the rollout is still at
the step and check time it judged (``ops.judge_rollout``), so when two replicas judge
the same interval exactly one commits and no step is applied twice; if one dies, the
other's next tick judges the step.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

import structlog

from xds_server.api import audit
from xds_server.api.call import now
from xds_server.api.commit import CommitPath
from xds_server.errors import PreconditionFailed, StoreUnavailable, XdsServerError
from xds_server.model import operations as ops
from xds_server.model import rollout as ro
from xds_server.model.state import World
from xds_server.traffic.windows import TrafficWindows, WindowSummary
from xds_server.translate.translator import cluster_name

log = structlog.get_logger(__name__)

TICK_SECONDS = 0.2
ACTOR = "control-plane (rollout)"


def figures(summary: WindowSummary, window: float) -> ro.Figures:
    """A window's real traffic as a rollout judges it: complete only if this replica saw
    the whole window (not just since it started) and every Envoy that reports the
    cluster sent every flush of it."""
    real = summary.real
    return ro.Figures(
        requests=real.requests,
        error_rate=real.error_rate,
        p99_ms=real.p99_ms,
        complete=(
            summary.envoys_reporting > 0
            and summary.missing_intervals == 0
            and summary.intervals >= math.ceil(window)
        ),
    )


class RolloutDriver:
    """Judges due rollout steps every ``TICK_SECONDS``."""

    def __init__(
        self,
        commits: CommitPath,
        world_of: Callable[[], World | None],
        windows: TrafficWindows,
        new_id: Callable[[], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._commits = commits
        self._world_of = world_of
        self._windows = windows
        self._new_id = new_id
        self._clock = clock
        # The services whose rollout may come due: kept from what each publication
        # touched, so a tick costs the running rollouts, not the size of the world.
        self._running: set[str] = set()
        world = world_of()
        if world is not None:
            self.note_published(world, None)

    def note_published(self, world: World, changed: frozenset[str] | None) -> None:
        """Follow a published world: ``changed`` names the services it touched (None: any)."""
        for name in world.services if changed is None else changed:
            service = world.services.get(name)
            rollout = service.rollout if service is not None else None
            if rollout is not None and rollout.phase in (ro.Phase.PROGRESSING, ro.Phase.HOLDING):
                self._running.add(name)
            else:
                self._running.discard(name)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await self.tick()
            except XdsServerError as error:  # a store outage: judged again next tick
                log.warning("rollout.tick_failed", error=str(error))

    async def tick(self) -> None:
        world = self._world_of()
        if world is None:
            return
        at = self._clock()
        for name in sorted(self._running):
            service = world.services.get(name)
            rollout = service.rollout if service is not None else None
            if rollout is None or not ro.due(rollout, at):
                continue
            try:
                await self._judge(world, name, rollout, at)
            except StoreUnavailable:
                raise  # the loop logs it and tries again next tick
            except Exception:  # one broken rollout must not stop every other's
                log.exception("rollout.judgement_failed", service=name)

    def _figures(
        self, world: World, service: str, tag: str, window: float, at: float
    ) -> ro.Figures:
        holder = dict(world.bindings_of(service)).get(tag)
        if holder is None:
            return ro.Figures(0, None, None, False)
        return figures(self._windows.summary(cluster_name(service, holder), window, at), window)

    async def _judge(self, world: World, service: str, rollout: ro.Rollout, at: float) -> None:
        spec = rollout.spec
        canary = self._figures(world, service, spec.canary, spec.interval_s, at)
        stable = self._figures(world, service, spec.stable, spec.interval_s, at)
        where = spec.describe(rollout.step)
        ctx = ops.Context(
            actor=ACTOR, now=now(), command=f"rollout {where} judged", new_id=self._new_id, clock=at
        )
        try:
            change = await self._commits.change_world_itself(
                "RolloutDriver",
                ACTOR,
                lambda current, _history: ops.judge_rollout(
                    current,
                    ctx,
                    service=service,
                    expected=(rollout.step, rollout.next_check_at),
                    canary=canary,
                    stable=stable,
                ),
                lambda _before, change: audit.rollout_moved(change, ctx.command),
            )
        except StoreUnavailable:
            raise
        except PreconditionFailed as refused:
            # Another replica, or an operator, moved it first; anything else is news.
            if "moved on" not in str(refused):
                log.warning("rollout.judgement_refused", service=service, error=str(refused))
            return
        verdict = change.result.rollout.verdicts[-1]
        log.info("rollout.judged", service=service, step=where, verdict=verdict.outcome)
