"""The deliverer: claims due deliveries from the outbox and hands them to their hooks.

One per replica, on the event loop. Each round leases what is due (the outbox keeps
commit order per hook and service, and one replica per delivery), starts one task
per delivery, at most ``PER_HOOK`` per hook at a time, and goes on: a hook that hangs
holds only its own deliveries, for its own timeout. A round runs when a change is
published (``wake``), when a delivery ends, and at least every ``POLL_SECONDS`` (for
retries that fall due and leases that run out on a replica that died).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import structlog

from xds_server.errors import XdsServerError
from xds_server.hooks.send import send
from xds_server.model.events import Event, hook_test_event, nack_event
from xds_server.model.hooks import Hook, retry_after
from xds_server.store.base import iso_time
from xds_server.store.outbox import (
    DELIVERED,
    FAILED,
    OUTCOMES,
    PENDING,
    Claim,
    Outbox,
    Outcome,
)

log = structlog.get_logger(__name__)

POLL_SECONDS = 1.0
# Deliveries in flight at once: per hook, and in all.
PER_HOOK = 4
IN_FLIGHT = 64
# A claim's lease is the hook's timeout plus this: the attempt and its bookkeeping.
LEASE_MARGIN_SECONDS = 10.0
PRUNE_SECONDS = 600.0
# One fleet.nack per node, type and version this long (a reconnecting Envoy NACKs again).
NACK_MEMORY_SECONDS = 600.0


@dataclass(frozen=True)
class TestResult:
    event_id: str
    outcome: Outcome


class Dispatcher:
    """Delivers the outbox's events for this replica (``replica``: its id in leases)."""

    def __init__(
        self,
        outbox: Outbox,
        replica: str,
        exclusive: bool = False,
        on_attempt: Callable[[str, str], None] = lambda _hook, _outcome: None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._replica = replica
        # Nobody else delivers from this store: leases left behind were a killed run's.
        self._exclusive = exclusive
        # Counts each attempt (hook, outcome) in the metrics.
        self._on_attempt = on_attempt
        self._clock = clock
        self._jitter = jitter
        self._wake = asyncio.Event()
        self._in_flight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._nacks: dict[tuple[str, str, str], float] = {}
        self._next_prune = 0.0
        # Redirects are not followed: a 3xx is the receiver's answer, and fails.
        self._client = httpx.AsyncClient(follow_redirects=False)

    def wake(self) -> None:
        """Something may be due: a change was published, a delivery ended."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver for the server's life."""
        try:
            if self._exclusive:
                await self._outbox.release_leases()
            while True:
                self._wake.clear()
                try:
                    await self._round()
                except XdsServerError as error:  # the store is down: the next round retries
                    log.warning("hooks.claim_failed", error=str(error))
                except Exception:  # a bug: logged loudly, and the loop goes on
                    log.exception("hooks.round_failed")
                try:
                    async with asyncio.timeout(POLL_SECONDS):
                        await self._wake.wait()
                except TimeoutError:
                    pass
        finally:
            for task in self._tasks:
                task.cancel()
            await self._client.aclose()

    async def _round(self) -> None:
        if self._clock() >= self._next_prune:
            self._next_prune = self._clock() + PRUNE_SECONDS
            await self._outbox.prune()
        room = IN_FLIGHT - len(self._tasks)
        if room <= 0:
            return
        claims = await self._outbox.claim(
            self._replica,
            room,
            LEASE_MARGIN_SECONDS,
            {hook: PER_HOOK - n for hook, n in self._in_flight.items()},
            PER_HOOK,
        )
        for claimed in claims:
            self._in_flight[claimed.hook.name] = self._in_flight.get(claimed.hook.name, 0) + 1
            task = asyncio.get_running_loop().create_task(self._deliver(claimed))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, claimed: Claim) -> None:
        hook = claimed.hook
        try:
            outcome = await send(
                hook, claimed.event_id, claimed.event_type, claimed.body, self._client
            )
            retry_in = retry_after(claimed.attempt, self._jitter())
            try:
                state = await self._outbox.finish(claimed, outcome, retry_in, self._replica)
            except XdsServerError as error:
                # Not recorded: the lease runs out and the delivery is made again (at
                # least once; receivers dedupe by X-Xds-Delivery).
                log.warning("hooks.finish_failed", hook=hook.name, error=str(error))
                return
            report = log.info if outcome.delivered else log.warning
            report(
                "hooks.attempt",
                hook=hook.name,
                type=claimed.event_type,
                delivery=claimed.event_id,
                attempt=claimed.attempt,
                outcome=OUTCOMES[state],
                status=outcome.status,
                retry_in=round(retry_in, 1) if state == PENDING else None,
            )
            self._on_attempt(hook.name, OUTCOMES[state])
        finally:
            self._in_flight[hook.name] -= 1
            if not self._in_flight[hook.name]:
                del self._in_flight[hook.name]
            self.wake()

    async def test(self, hook: Hook, actor: str) -> TestResult:
        """Send ``hook`` a ``hook.test`` event now, record the attempt, and say how it went."""
        event_id = str(uuid.uuid4())
        event = hook_test_event(hook.name, actor, iso_time(self._clock()))
        claimed = _one_off(hook, event, event_id)
        outcome = await send(hook, event_id, event.type, claimed.body, self._client)
        state = DELIVERED if outcome.delivered else FAILED
        await self._outbox.record_attempt(claimed, outcome, state, self._replica)
        return TestResult(event_id, outcome)

    def note_nack(self, node: str, type_url: str, version: str, error: str) -> None:
        """An Envoy refused a config: a ``fleet.nack`` event, once per node, type and
        version (written by a task: the xDS stream that saw it does not wait)."""
        now = self._clock()
        self._nacks = {k: t for k, t in self._nacks.items() if now - t < NACK_MEMORY_SECONDS}
        key = (node, type_url, version)
        if key in self._nacks:
            return
        self._nacks[key] = now
        event = nack_event(node, type_url, version, error, iso_time(now))
        task = asyncio.get_running_loop().create_task(self._record(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, event: Event) -> None:
        try:
            await self._outbox.record([event])
        except XdsServerError as error:
            log.warning("hooks.event_lost", type=event.type, error=str(error))
            return
        self.wake()


def _one_off(hook: Hook, event: Event, event_id: str) -> Claim:
    """A test event as a claim of its own: no delivery row, never retried."""
    body = json.dumps(event.document(event_id)).encode()
    return Claim(hook, 0, "", event_id, event.type, body, 1, None, "")


def replica_name() -> str:
    """How deliveries name this replica: the host and process, readable in
    ``hooks deliveries``, unique among live replicas."""
    return f"{socket.gethostname()}:{os.getpid()}"
