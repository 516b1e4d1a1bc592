"""Who calls the operator API, resolved once per call for the history, audit log and store."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from xds_server.api.metadata import ACTOR_METADATA_KEY, DRY_RUN_METADATA_KEY
from xds_server.auth.identity import current_identity


def now() -> str:
    """The time a history entry or a token records, in UTC to the millisecond."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _actor(context: grpc.aio.ServicerContext[Any, Any], metadata: dict[str, Any]) -> str:
    """Who the audit log and history name: the authenticated identity, with the user
    the client says it runs as (unverified, but useful with a shared CI token); on a
    server that has no token yet, only that claim (or the peer address)."""
    claimed = str(metadata.get(ACTOR_METADATA_KEY) or context.peer())
    identity = current_identity()
    if identity is None or not identity.authenticated:
        return claimed
    return f"{identity.name} ({claimed})"


@dataclass(frozen=True)
class Call:
    """One operator call: what it asks, who asks, and the credential the write re-checks."""

    request: Message
    context: grpc.aio.ServicerContext[Any, Any]
    actor: str
    # The caller's token hash, checked again inside the write transaction (a token
    # revoked since the API guard let the call in is refused there).
    credential: str | None
    # The identity's name (empty without one): part of what a request id stands for.
    identity: str
    # Check and answer the write, store and push nothing (``--dry-run``).
    dry_run: bool = False

    @classmethod
    def of(cls, request: Message, context: grpc.aio.ServicerContext[Any, Any]) -> Call:
        """The call being served (the identity is the API guard's, for this task)."""
        identity = current_identity()
        metadata = dict(context.invocation_metadata() or ())
        return cls(
            request=request,
            context=context,
            actor=_actor(context, metadata),
            credential=identity.credential if identity is not None else None,
            identity=identity.name if identity is not None else "",
            dry_run=DRY_RUN_METADATA_KEY in metadata,
        )

    def mark_dry_run(self) -> None:
        """Say, in the answer's trailing metadata, that nothing was stored or pushed
        (the client refuses a dry run's answer without it: an older server applied it)."""
        self.context.set_trailing_metadata(((DRY_RUN_METADATA_KEY, "1"),))

    @property
    def method(self) -> str:
        """The RPC's name: every request type is named after its method."""
        return self.request.DESCRIPTOR.name.removesuffix("Request")
