"""The hook RPCs (admin): add, list, remove, test, and the deliveries they made.

The servicer's AddHook ... ListHookDeliveries delegate here. Adding and removing go
through the commit path like every write (request ids, audit, the hooks' table in
one transaction); the secret never leaves the server, and no record logs it.
"""

from __future__ import annotations

import shlex

from xds_server.api import audit
from xds_server.api.call import Call, now
from xds_server.api.commit import CommitPath
from xds_server.errors import InvalidRequest
from xds_server.hooks.dispatcher import Dispatcher
from xds_server.model.hooks import Hook, find_hook, new_hook, with_hook, without_hook
from xds_server.store.base import Store, iso_time
from xds_server.store.outbox import MAX_ATTEMPTS_KEPT, Attempt, HookQueue
from xds_server.v1 import operator_pb2 as pb

DEFAULT_DELIVERIES_SHOWN = 20


def hook_to_pb(hook: Hook, queue: HookQueue | None = None) -> pb.Hook:
    """A hook as the API shows it: never its secret, only whether it signs."""
    queue = queue or HookQueue()
    return pb.Hook(
        name=hook.name,
        kind=hook.kind,
        target=hook.url or shlex.join(hook.command),
        events=list(hook.events),
        timeout_seconds=hook.timeout_s,
        signed=bool(hook.secret),
        created_at=hook.created_at,
        created_by=hook.created_by,
        pending=queue.pending,
        failed=queue.failed,
    )


def attempt_to_pb(attempt: Attempt) -> pb.HookAttempt:
    return pb.HookAttempt(
        hook=attempt.hook,
        event_id=attempt.event_id,
        event_type=attempt.event_type,
        attempt=attempt.attempt,
        time=iso_time(attempt.at),
        outcome=attempt.outcome,
        status=attempt.status,
        response=attempt.response,
        replica=attempt.replica,
    )


def _add_command(hook: Hook) -> str:
    """The audit log's line for an added hook (the target, never the secret)."""
    target = f"--url {hook.url}" if hook.url else f"--exec {shlex.quote(shlex.join(hook.command))}"
    signed = " --secret-file ..." if hook.secret else ""
    return f"hooks add {hook.name} {target}{signed} --events {','.join(hook.events)}"


class HookRpcs:
    """What the hook RPCs do, on the store's outbox and this replica's dispatcher."""

    def __init__(self, store: Store, commits: CommitPath, dispatcher: Dispatcher) -> None:
        self._store = store
        self._commits = commits
        self._dispatcher = dispatcher

    async def add(self, request: pb.AddHookRequest, call: Call) -> pb.Hook:
        hook = new_hook(
            name=request.name,
            url=request.url,
            command=request.command,
            secret=request.secret,
            events=request.events,
            timeout_s=request.timeout_seconds,
            created_at=now(),
            created_by=call.actor,
        )
        return await self._commits.edit_hooks(
            call,
            audit.hooks_changed(_add_command(hook), hook.name),
            lambda hooks: with_hook(hooks, hook),
            lambda _hooks: hook_to_pb(hook),
        )

    async def list(self) -> pb.ListHooksResponse:
        hooks = await self._store.outbox.hooks()
        queues = await self._store.outbox.queues()
        return pb.ListHooksResponse(hooks=[hook_to_pb(h, queues.get(h.name)) for h in hooks])

    async def remove(self, request: pb.RemoveHookRequest, call: Call) -> pb.Hook:
        removed: list[Hook] = []
        # What it had waiting, to say what the removal drops (read just before it).
        queue = (await self._store.outbox.queues()).get(request.name)

        def edit(hooks: tuple[Hook, ...]) -> tuple[Hook, ...]:
            removed[:] = [find_hook(hooks, request.name)]
            return without_hook(hooks, request.name)

        return await self._commits.edit_hooks(
            call,
            audit.hooks_changed(f"hooks remove {request.name}", request.name),
            edit,
            lambda _hooks: hook_to_pb(removed[0], queue),
        )

    async def test(self, request: pb.TestHookRequest, call: Call) -> pb.HookAttempt:
        hook = find_hook(await self._store.outbox.hooks(), request.name)
        if call.dry_run:  # sending is the whole of it: a dry run only finds the hook
            call.mark_dry_run()
            return pb.HookAttempt(hook=hook.name, event_type="hook.test", outcome="dry run")
        result = await self._dispatcher.test(hook, call.actor)
        outcome = result.outcome
        return pb.HookAttempt(
            hook=hook.name,
            event_id=result.event_id,
            event_type="hook.test",
            attempt=1,
            time=now(),
            outcome="delivered" if outcome.delivered else "failed",
            status=outcome.status,
            response=outcome.response,
        )

    async def deliveries(
        self, request: pb.ListHookDeliveriesRequest
    ) -> pb.ListHookDeliveriesResponse:
        if not 0 <= request.limit <= MAX_ATTEMPTS_KEPT:
            raise InvalidRequest(f"--limit must be 1 to {MAX_ATTEMPTS_KEPT} (got {request.limit})")
        hook = find_hook(await self._store.outbox.hooks(), request.name)
        attempts = await self._store.outbox.attempts(
            hook.name, request.limit or DEFAULT_DELIVERIES_SHOWN
        )
        return pb.ListHookDeliveriesResponse(attempts=[attempt_to_pb(a) for a in attempts])
