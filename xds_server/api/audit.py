"""Audit records: what every committed write logs, in one shape.

Each record is an event with its own fields; ``log_records`` adds who asked
(``actor``) and by which RPC (``method``) to every one, so no write can log a
change without them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from xds_server.api.call import Call
from xds_server.model import operations as ops
from xds_server.model.state import Picture, World
from xds_server.model.world_document import routing_to_document
from xds_server.store.base import StateDump

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class AuditRecord:
    """One audit log line: its event and what it says besides the actor and method."""

    event: str
    fields: Mapping[str, Any]


def picture_summary(picture: Picture) -> dict[str, Any]:
    """A picture as plain fields for an audit record."""
    return {
        "weights": dict(picture.policy.weights),
        "mirrors": {m.tag: m.percent for m in picture.policy.mirrors},
        "bindings": dict(picture.bindings),
        "routing": routing_to_document(picture.routing),
    }


def revisions(change: ops.Change[Any], command: str) -> list[AuditRecord]:
    """One record per revision the change made: the command, the picture before and after."""
    return [
        AuditRecord(
            "operator.change",
            {
                "command": command,
                "service": entry.service,
                "revision": entry.revision,
                "before": picture_summary(entry.before),
                "after": picture_summary(entry.after),
                **({"reason": entry.reason} if entry.reason else {}),
            },
        )
        for entry in change.history
    ]


def rollout_moved(change: ops.Change[ops.RolloutResult], command: str) -> list[AuditRecord]:
    """A rollout transition: its revision when it moved traffic, and the transition itself
    (pauses, holds and resumes move none but are logged all the same)."""
    rollout = change.result.rollout
    transition = AuditRecord(
        "rollout.transition",
        {
            "command": command,
            "service": change.touched,
            "phase": rollout.phase.value,
            "step": rollout.spec.describe(rollout.step),
            "reason": rollout.reason,
            "revision": change.result.revision,
        },
    )
    return [*revisions(change, command), transition]


def configured(
    before: World, change: ops.Change[Any], command: str, subject: str
) -> list[AuditRecord]:
    """A ``services set``: its revision when it changed routing, its domains when they moved."""
    records = revisions(change, command)
    domains_before = getattr(before.services.get(subject), "domains", None)
    domains_after = getattr(change.world.services.get(subject), "domains", None)
    if domains_before != domains_after:
        records.append(before_after(subject, domains_before, domains_after))
    return records


def before_after(subject: str, before: Any, after: Any) -> AuditRecord:
    """A change without a revision: what it changed, seen before and after."""
    return AuditRecord("operator.change", {"subject": subject, "before": before, "after": after})


def state_imported(dump: StateDump, replace: bool) -> AuditRecord:
    """An imported state document, counted (its contents are in the store)."""
    return AuditRecord(
        "operator.state_imported",
        {
            "replace": replace,
            "services": len(dump.world.services),
            "deployments": len(dump.world.deployments),
            "history_entries": len(dump.history),
            "tokens": len(dump.tokens),
        },
    )


def tokens_changed(command: str, token: str) -> AuditRecord:
    """A token created or revoked, by name (never the secret)."""
    return AuditRecord("operator.tokens_changed", {"command": command, "token": token})


def hooks_changed(command: str, hook: str) -> AuditRecord:
    """A hook added or removed, by name (never its secret)."""
    return AuditRecord("operator.hooks_changed", {"command": command, "hook": hook})


def log_records(records: Iterable[AuditRecord], call: Call) -> None:
    """Log a committed write's records, each naming the call's method and actor."""
    log_as(records, call.method, call.actor)


def log_as(records: Iterable[AuditRecord], method: str, actor: str) -> None:
    """Log a committed write's records under ``method`` and ``actor``."""
    for record in records:
        log.info(record.event, method=method, actor=actor, **record.fields)
