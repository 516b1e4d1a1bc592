"""The SQL both stores share: reading the world, writing a change's diff (the schema
is in ``schema``).

SQLite and PostgreSQL run the same statements through ``Db``, a thin
adapter over a DB-API connection that takes ``?`` placeholders (the
PostgreSQL store rewrites them to ``%s``). Both stores run this code on
worker threads, never on the event loop.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import structlog

from xds_server.auth.identity import NO_TOKENS_YET
from xds_server.auth.roles import parse_role
from xds_server.auth.tokens import TokenRecord
from xds_server.errors import (
    InvalidRequest,
    PreconditionFailed,
    Replayed,
    Unauthenticated,
    UnreadableRow,
)
from xds_server.model.invariants import WorldDiff, world_diff
from xds_server.model.state import (
    Deployment,
    DeploymentState,
    HistoryEntry,
    Service,
    TrafficPolicy,
    World,
)
from xds_server.store import codec
from xds_server.store.base import Row, StateDump, WriteRequest

log = structlog.get_logger(__name__)

T = TypeVar("T")


# How long a request id is remembered: far beyond any client's retries.
REQUEST_MEMORY_SECONDS = 24 * 3600
# The change log keeps this many changes: a replica further behind reloads all.
CHANGE_LOG_KEEP = 10_000


class Db(Protocol):
    """What the shared statements need from a connection."""

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


def bump_sequence(db: Db) -> int:
    """Start a change: the next global sequence number (on PostgreSQL, also a lock)."""
    return int(db.all("UPDATE change_sequence SET seq = seq + 1 RETURNING seq")[0]["seq"])


def sequence(db: Db) -> int:
    return int(db.all("SELECT seq FROM change_sequence")[0]["seq"])


def _decoded(table: str, key: object, decode: Callable[[], T]) -> T:
    try:
        return decode()
    except (ValueError, TypeError, KeyError, InvalidRequest) as error:
        raise UnreadableRow(
            f"its {table} row {key!r} cannot be read ({type(error).__name__}: {error})"
        ) from error


class DbHistory:
    """Reads history inside the running transaction (for rollback)."""

    def __init__(self, db: Db) -> None:
        self._db = db

    def entry(self, service: str, revision: int) -> HistoryEntry | None:
        rows = self._db.all(
            "SELECT * FROM history WHERE service = ? AND revision = ?", (service, revision)
        )
        return history_entry(rows[0]) if rows else None


def history_entry(row: Row) -> HistoryEntry:
    return _decoded(
        "history",
        (row["service"], row["revision"]),
        lambda: HistoryEntry(
            service=row["service"],
            revision=row["revision"],
            time=row["time"],
            actor=row["actor"],
            command=row["command"],
            before=codec.decode_picture(row["before"]),
            after=codec.decode_picture(row["after"]),
            reason=row["reason"],
        ),
    )


def history(db: Db, service: str, limit: int | None) -> list[HistoryEntry]:
    """A service's entries, newest first (every service's when ``service`` is empty)."""
    where = "WHERE service = ?" if service else ""
    params: list[Any] = [service] if service else []
    bound = ""
    if limit is not None:
        bound, params = " LIMIT ?", [*params, limit]
    rows = db.all(f"SELECT * FROM history {where} ORDER BY service, revision DESC{bound}", params)
    return [history_entry(row) for row in rows]


def _service(row: Row, domains: dict[str, list[str]]) -> Service:
    return _decoded(
        "services",
        row["name"],
        lambda: Service(
            name=row["name"],
            domains=tuple(domains.get(row["name"], ())),
            revision=row["revision"],
            policy=TrafficPolicy(
                weights=codec.decode_pairs(row["weights"]),
                mirrors=codec.decode_mirrors(row["mirrors"]),
            ),
            routing=codec.decode_routing(row["routing"]),
            rollout=codec.decode_rollout(row["rollout"]),
        ),
    )


def _deployment(row: Row) -> Deployment:
    return _decoded(
        "deployments",
        row["id"],
        lambda: Deployment(
            id=row["id"],
            service=row["service"],
            created_at=row["created_at"],
            endpoints=codec.decode_endpoints(row["endpoints"]),
            labels=codec.decode_pairs(row["labels"]),
            tag=row["tag"],
            state=DeploymentState(row["state"]),
        ),
    )


def _rows_of(db: Db, sql: str, names: Sequence[str] | None) -> list[Row]:
    """All rows of ``sql`` or, with ``names``, those whose service is one of them."""
    if names is None:
        return db.all(sql)
    marks = ", ".join("?" for _ in names)
    column = "name" if "FROM services" in sql else "service"
    return db.all(f"{sql} WHERE {column} IN ({marks})", list(names))


def load_services(db: Db, names: Sequence[str] | None = None) -> World:
    """The services named (and their deployments), or every one: a world of them."""
    domains: dict[str, list[tuple[int, str]]] = {}
    for row in _rows_of(db, "SELECT domain, service, position FROM domains", names):
        domains.setdefault(row["service"], []).append((row["position"], row["domain"]))
    ordered = {name: [d for _, d in sorted(found)] for name, found in domains.items()}
    services = {
        row["name"]: _service(row, ordered) for row in _rows_of(db, "SELECT * FROM services", names)
    }
    deployments = {
        row["id"]: _deployment(row) for row in _rows_of(db, "SELECT * FROM deployments", names)
    }
    return World(services=services, deployments=deployments)


def load_world(db: Db) -> World:
    return load_services(db)


def log_change(db: Db, sequence: int, services: Iterable[str] | None, tokens: bool = False) -> None:
    """Record what change ``sequence`` touched (None: everything), forgetting old entries."""
    db.run("DELETE FROM changes WHERE seq <= ?", (sequence - CHANGE_LOG_KEEP,))
    db.run(
        "INSERT INTO changes (seq, services, tokens, everything) VALUES (?, ?, ?, ?)",
        (
            sequence,
            codec.encode_names(sorted(services or ())),
            int(tokens),
            int(services is None),
        ),
    )


def changes_after(db: Db, sequence: int) -> list[Row]:
    """The change log after ``sequence``, oldest first."""
    return db.all("SELECT * FROM changes WHERE seq > ? ORDER BY seq", (sequence,))


def write_change(db: Db, diff: WorldDiff, history: Iterable[HistoryEntry]) -> None:
    """Persist a change: the rows ``diff`` names, plus its history entries."""
    write_diff(db, diff)
    write_history(db, history)


def write_diff(db: Db, diff: WorldDiff) -> None:
    """Changed rows are deleted before any is inserted, so a tag or a domain that
    moves between two rows never trips a unique index half way."""
    for service in diff.services:
        db.run("DELETE FROM domains WHERE service = ?", (service.name,))
    for deployment in (*diff.deployments, *diff.removed_deployments):
        db.run("DELETE FROM deployments WHERE id = ?", (deployment.id,))

    for service in diff.services:
        db.run(
            "INSERT INTO services (name, revision, weights, mirrors, routing, rollout) "
            "VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, "
            "weights = excluded.weights, mirrors = excluded.mirrors, "
            "routing = excluded.routing, rollout = excluded.rollout",
            (
                service.name,
                service.revision,
                codec.encode_pairs(service.policy.weights),
                codec.encode_mirrors(service.policy.mirrors),
                codec.encode_routing(service.routing),
                codec.encode_rollout(service.rollout),
            ),
        )
        db.run_many(
            "INSERT INTO domains (domain, service, position) VALUES (?, ?, ?)",
            [(domain, service.name, i) for i, domain in enumerate(service.domains)],
        )
    db.run_many(
        "INSERT INTO deployments (id, service, created_at, endpoints, labels, tag, state) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                d.id,
                d.service,
                d.created_at,
                codec.encode_endpoints(d.endpoints),
                codec.encode_pairs(d.labels),
                d.tag,
                d.state.value,
            )
            for d in diff.deployments
        ],
    )


def write_history(db: Db, entries: Iterable[HistoryEntry]) -> None:
    db.run_many(
        "INSERT INTO history (service, revision, time, actor, command, before, after, reason) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.service,
                e.revision,
                e.time,
                e.actor,
                e.command,
                codec.encode_picture(e.before),
                codec.encode_picture(e.after),
                e.reason,
            )
            for e in entries
        ],
    )


def post_fleet(
    db: Db,
    replica: str,
    now: float,
    sequence: int,
    statuses: Iterable[tuple[str, str, bytes]] | None,
    parts: Iterable[tuple[str, str, bytes]] = (),
) -> None:
    """Replace ``replica``'s posted nodes with ``statuses`` (node id, status in the
    board's format, the node's CSDS identity as protobuf) and put the CSDS ``parts``
    that changed (node id, type URL, part); ``None``: only the heartbeat."""
    db.run(
        "INSERT INTO replicas (id, heartbeat_at) VALUES (?, ?) "
        "ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        (replica, now),
    )
    if statuses is None:
        return
    db.run("DELETE FROM board_nodes WHERE replica = ?", (replica,))
    db.run_many(
        "INSERT INTO board_nodes (replica, node_id, sequence, status, csds) VALUES (?, ?, ?, ?, ?)",
        [(replica, node_id, sequence, status, csds) for node_id, status, csds in statuses],
    )
    db.run(
        "DELETE FROM board_parts WHERE replica = ? AND node_id NOT IN "
        "(SELECT node_id FROM board_nodes WHERE replica = ?)",
        (replica, replica),
    )
    db.run_many(
        "INSERT INTO board_parts (replica, node_id, type_url, part) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (replica, node_id, type_url) DO UPDATE SET part = excluded.part",
        [(replica, node_id, type_url, part) for node_id, type_url, part in parts],
    )


def fleet_parts_elsewhere(db: Db, replica: str, fresh_after: float) -> list[Row]:
    """The CSDS parts the other live replicas posted, by node and type."""
    return db.all(
        "SELECT p.replica, p.node_id, p.part FROM board_parts p "
        "JOIN replicas r ON r.id = p.replica "
        "WHERE p.replica <> ? AND r.heartbeat_at >= ? ORDER BY p.node_id, p.type_url",
        (replica, fresh_after),
    )


def fleet_elsewhere(db: Db, replica: str, fresh_after: float) -> list[Row]:
    """What the other live replicas posted (heartbeat at or after ``fresh_after``)."""
    return db.all(
        "SELECT n.replica, n.node_id, n.sequence, n.status, n.csds FROM board_nodes n "
        "JOIN replicas r ON r.id = n.replica "
        "WHERE n.replica <> ? AND r.heartbeat_at >= ? ORDER BY n.node_id",
        (replica, fresh_after),
    )


def load_tokens(db: Db) -> tuple[TokenRecord, ...]:
    """Every token record, by name."""
    return tuple(
        _decoded("tokens", row["name"], functools.partial(_token, row))
        for row in db.all("SELECT * FROM tokens ORDER BY name")
    )


def _token(row: Row) -> TokenRecord:
    return TokenRecord(
        name=row["name"],
        role=parse_role(row["role"]),
        sha256=row["sha256"],
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


def write_tokens(db: Db, before: Iterable[TokenRecord], after: Iterable[TokenRecord]) -> None:
    """Bring the tokens table from ``before`` to ``after`` (records are never edited)."""
    old, new = set(before), set(after)
    db.run_many("DELETE FROM tokens WHERE name = ?", [(t.name,) for t in old - new])
    db.run_many(
        "INSERT INTO tokens (name, role, sha256, created_at, created_by) VALUES (?, ?, ?, ?, ?)",
        [(t.name, t.role.label, t.sha256, t.created_at, t.created_by) for t in new - old],
    )


def check_credential(db: Db, sha256: str | None) -> None:
    """Refuse a write whose credential went away since the call was let in (on any
    replica): checked inside the write transaction, after the sequence lock, so no change
    commits under a token whose revocation committed first, and no anonymous change
    commits once a first token exists. ``None``: nothing to check (a certificate)."""
    if sha256 is None:
        return
    if sha256 == NO_TOKENS_YET:
        if db.all("SELECT 1 FROM tokens LIMIT 1"):
            raise Unauthenticated(
                "not authenticated: a token was created meanwhile and this server now needs "
                "one: set XDSCTL_TOKEN or pass --token-file; nothing was changed"
            )
    elif not db.all("SELECT 1 FROM tokens WHERE sha256 = ?", (sha256,)):
        raise Unauthenticated(
            "not authenticated: the token was revoked: ask an admin for a new one "
            "(`xdsctl tokens create`); nothing was changed"
        )


def dump(db: Db) -> StateDump:
    """The whole state (call inside one read transaction)."""
    return StateDump(
        world=load_world(db), history=tuple(history(db, "", None)), tokens=load_tokens(db)
    )


def import_refused(held: Sequence[str]) -> PreconditionFailed:
    """Why an import without --replace is refused by a store that holds ``held``."""
    names = ", ".join(held[:20])
    return PreconditionFailed(
        f"the store already holds services ({names}{', ...' if len(held) > 20 else ''}): "
        "import only into an empty store, or pass --replace to overwrite everything"
    )


def restore(db: Db, state: StateDump, replace: bool) -> None:
    """Make ``state`` the whole state (call inside one write transaction)."""
    held = [row["name"] for row in db.all("SELECT name FROM services ORDER BY name")]
    if held and not replace:
        raise import_refused(held)
    for table in ("history", "domains", "deployments", "services"):
        db.run(f"DELETE FROM {table}")
    write_diff(db, world_diff(World(), state.world))
    write_history(db, state.history)
    if state.tokens:
        # Moving engines keeps every token working; a document without
        # tokens leaves the store's own (so an import cannot lock admins out).
        write_tokens(db, load_tokens(db), state.tokens)


def recall_request(db: Db, request: WriteRequest) -> None:
    """Raise ``Replayed`` if ``request`` was committed before (and not yet forgotten:
    ids older than the memory go at the next write); refuse an id reused for a
    different request."""
    found = db.all("SELECT fingerprint, reply FROM requests WHERE id = ?", (request.id,))
    if not found:
        return
    if found[0]["fingerprint"] != request.fingerprint:
        raise InvalidRequest(
            f"request id {request.id} was already used for a different request: give each "
            "command its own id (unset XDSCTL_REQUEST_ID, and the CLI makes a fresh one)"
        )
    raise Replayed(base64.b64decode(found[0]["reply"]))


def remember_request(db: Db, request: WriteRequest, reply: bytes, now: float) -> None:
    """Record a committed request's reply, and forget those beyond the memory."""
    db.run("DELETE FROM requests WHERE created_at < ?", (now - REQUEST_MEMORY_SECONDS,))
    db.run(
        "INSERT INTO requests (id, fingerprint, reply, created_at) VALUES (?, ?, ?, ?)",
        (request.id, request.fingerprint, base64.b64encode(reply).decode(), now),
    )
