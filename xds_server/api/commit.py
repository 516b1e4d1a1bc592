"""The one path of every operator write: commit, audit, publish, reply.

A write RPC says what to change (the world, the whole state, the tokens) and
how to reply; ``CommitPath`` does the rest, always in this order: commit with
the call's request id (a repeat of a committed id changes nothing and gets its
first reply), log the write's audit records, hand the new state on to the xDS
snapshot, reply. So a call that returns is durable, audited and being pushed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from google.protobuf.message import Message

from xds_server.api import audit
from xds_server.api.audit import AuditRecord
from xds_server.api.call import Call
from xds_server.api.retry import first_reply, retry_key
from xds_server.auth.tokens import TokenRecord
from xds_server.errors import Replayed
from xds_server.model import operations as ops
from xds_server.model.hooks import Hook
from xds_server.model.operations import HistoryReader
from xds_server.model.state import World
from xds_server.store.base import (
    ChangeFunction,
    HookEdit,
    StateDump,
    Store,
    TokenEdit,
    WriteRequest,
)
from xds_server.store.outbox import with_secrets_kept
from xds_server.store.rows import import_refused

log = structlog.get_logger(__name__)

T = TypeVar("T")
Result = TypeVar("Result")
ReplyT = TypeVar("ReplyT", bound=Message)


@dataclass(frozen=True)
class Committed(Generic[Result]):
    """What the store returned for a write, and the audit records that describe it."""

    result: Result
    audit: Sequence[AuditRecord]


# Commits given the call's request id (None without one).
Write = Callable[[WriteRequest | None], Awaitable[Committed[Result]]]
# What the audit log says of a world change, given the world it started from.
WorldAudit = Callable[[World, ops.Change[T]], Sequence[AuditRecord]]


def _unchanged(reply: Any) -> Any:
    return reply


class CommitPath:
    """Commits every write RPC's change to the store, audits and publishes it."""

    def __init__(self, store: Store, publish: Callable[[], Awaitable[None]]) -> None:
        self._store = store
        # Publishes the committed state (the follower), before the call returns.
        self._publish = publish

    async def change_world(
        self,
        call: Call,
        change: ChangeFunction[T],
        audited: WorldAudit[T],
        reply: Callable[[ops.Change[T]], ReplyT],
    ) -> ReplyT:
        """Commit a change of the world, audited against the world it changed."""
        before: list[World] = []

        def recorded(world: World, history: HistoryReader) -> ops.Change[T]:
            # The store may run a change more than once: the last run is committed.
            before.append(world)
            return change(world, history)

        async def write(retry: WriteRequest | None) -> Committed[ops.Change[T]]:
            committed = await self._store.transact(
                recorded, call.credential, retry, actor=call.actor
            )
            return Committed(committed, audited(before[-1], committed))

        async def preview() -> ops.Change[T]:
            return await self._store.preview(change)

        return await self._run(call, write, reply, preview=preview)

    async def change_world_itself(
        self, method: str, actor: str, change: ChangeFunction[T], audited: WorldAudit[T]
    ) -> ops.Change[T]:
        """Commit a change the control plane makes on its own (a rollout's step): no
        caller, no request id; audited under ``method`` and ``actor`` like any other."""
        before: list[World] = []

        def recorded(world: World, history: HistoryReader) -> ops.Change[T]:
            before.append(world)
            return change(world, history)

        committed = await self._store.transact(recorded, actor=actor)
        audit.log_as(audited(before[-1], committed), method, actor)
        await self._publish()
        return committed

    async def import_state(
        self, call: Call, dump: StateDump, replace: bool, reply: Callable[[None], ReplyT]
    ) -> ReplyT:
        """Commit a whole state document (validated by the caller)."""

        async def write(retry: WriteRequest | None) -> Committed[None]:
            await self._store.import_state(dump, replace, call.credential, retry, actor=call.actor)
            return Committed(None, [audit.state_imported(dump, replace)])

        async def preview() -> None:
            # The document was validated whole by the caller; what a store adds is the
            # refusal over existing state.
            held = sorted((await self._store.load()).services)
            if held and not replace:
                raise import_refused(held)
            if dump.hooks is not None:
                with_secrets_kept(dump.hooks, await self._store.outbox.hooks())

        return await self._run(call, write, reply, preview=preview)

    async def edit_tokens(
        self,
        call: Call,
        command: str,
        token: str,
        edit: TokenEdit,
        reply: Callable[[tuple[TokenRecord, ...]], ReplyT],
        remembered: Callable[[ReplyT], Message] = _unchanged,
        replayed: Callable[[ReplyT], ReplyT] = _unchanged,
    ) -> ReplyT:
        """Commit a token change; the publication reloads every replica's token book.

        ``remembered``: the part of the reply a repeat of the request id is answered
        with (passed through ``replayed``), when not all of it may be stored.
        """

        async def write(retry: WriteRequest | None) -> Committed[tuple[TokenRecord, ...]]:
            tokens = await self._store.edit_tokens(edit, call.credential, retry)
            return Committed(tokens, [audit.tokens_changed(command, token)])

        async def preview() -> tuple[TokenRecord, ...]:
            return edit(await self._store.tokens())

        # A dry run shows only what a repeat would: never a secret that will not exist.
        return await self._run(
            call, write, reply, remembered, replayed, preview=preview, previewed=remembered
        )

    async def edit_hooks(
        self,
        call: Call,
        record: AuditRecord,
        edit: HookEdit,
        reply: Callable[[tuple[Hook, ...]], ReplyT],
    ) -> ReplyT:
        """Commit a change of the hooks (never their secrets in ``record``)."""

        async def write(retry: WriteRequest | None) -> Committed[tuple[Hook, ...]]:
            hooks = await self._store.edit_hooks(edit, call.credential, retry)
            return Committed(hooks, [record])

        async def preview() -> tuple[Hook, ...]:
            return edit(await self._store.outbox.hooks())

        return await self._run(call, write, reply, preview=preview)

    async def _run(
        self,
        call: Call,
        write: Write[Result],
        reply: Callable[[Result], ReplyT],
        remembered: Callable[[ReplyT], Message] = _unchanged,
        replayed: Callable[[ReplyT], ReplyT] = _unchanged,
        preview: Callable[[], Awaitable[Result]] | None = None,
        previewed: Callable[[ReplyT], Message] = _unchanged,
    ) -> ReplyT:
        """Commit, audit, publish, reply; ``reply`` also runs inside the store's
        transaction, so a request id's reply is remembered with its change.

        A dry run (``call.dry_run``) runs ``preview`` instead: the same checks on the
        current state, answered (through ``previewed``) as the write would be, with
        nothing stored, audited or pushed."""
        if call.dry_run and preview is not None:
            answer = previewed(reply(await preview()))
            call.mark_dry_run()
            log.info("operator.dry_run", method=call.method, actor=call.actor)
            return answer  # type: ignore[return-value]
        retry = retry_key(call, lambda result: remembered(reply(result)))
        try:
            committed = await write(retry)
        except Replayed as replay:
            assert retry is not None  # only a request with an id is replayed
            return replayed(first_reply(call, retry, replay))  # type: ignore[arg-type]
        audit.log_records(committed.audit, call)
        await self._publish()
        return reply(committed.result)
