"""The outbox: events written with their change, and the deliveries hooks claim.

``write_events`` runs inside a change's own transaction (``SqlStore.transact``): the
events and one delivery row per hook that wants each are committed with the change
or not at all. Deliverers (``xds_server.hooks.dispatcher``) then ``claim`` due
deliveries under a lease and ``finish`` them. A delivery is due only when it heads
its (hook, service) queue, so each hook sees each service's events in commit order;
with several replicas, the lease (and on PostgreSQL ``FOR UPDATE SKIP LOCKED``)
makes one replica deliver each, and another take over once the lease runs out.

Bounded: delivered and failed deliveries, their events and attempts are dropped
after ``KEEP_SECONDS`` (a deployment's last scale event is kept while it exists,
so ``deployments list`` can say whether it was confirmed).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from xds_server.errors import PreconditionFailed
from xds_server.model.events import DEPLOYMENT_SCALE, Event
from xds_server.model.hooks import OMITTED_SECRET, Hook, gives_up
from xds_server.store.base import Row
from xds_server.store.rows import Db, _decoded

T = TypeVar("T")
# The time a transaction runs at, in seconds since the epoch. Leases and due times are
# compared across replicas, so on PostgreSQL it is the database's clock, not a host's.
Clock = Callable[[Db], float]


def host_clock(_db: Db) -> float:
    """A store only one process uses (a state file): this host's clock."""
    return time.time()


def database_clock(db: Db) -> float:
    """PostgreSQL's clock: one for every replica, whatever their hosts' clocks say."""
    return float(db.all("SELECT EXTRACT(EPOCH FROM clock_timestamp()) AS now")[0]["now"])


PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
# How an attempt's outcome is shown (`hooks deliveries`, the metrics) by the state
# it left its delivery in.
OUTCOMES = {DELIVERED: "delivered", PENDING: "retrying", FAILED: "failed"}
# A delivery waiting for the one before it in its queue is due at this time (never).
BLOCKED = 1e18
# Finished deliveries, their events and attempts are kept this long.
KEEP_SECONDS = 7 * 24 * 3600.0
# The attempts kept per hook (``hooks deliveries --limit`` shows at most this many).
MAX_ATTEMPTS_KEPT = 500
RESPONSE_EXCERPT = 300


@dataclass(frozen=True)
class Claim:
    """A delivery this replica holds the lease of: deliver it, then ``finish`` it."""

    hook: Hook
    seq: int
    service: str
    event_id: str
    event_type: str
    body: bytes
    attempt: int  # this attempt's number, from 1
    first_failure: float | None
    token: str  # proves the lease is still this claim's when it finishes


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: delivered or not, a status (``200``, ``exit 3``,
    ``timeout after 5s``) and the start of the answer."""

    delivered: bool
    status: str
    response: str = ""


@dataclass(frozen=True)
class Attempt:
    """One try, as ``hooks deliveries`` lists it."""

    hook: str
    event_id: str
    event_type: str
    attempt: int
    at: float
    outcome: str  # delivered | retrying | failed
    status: str
    response: str
    replica: str


@dataclass(frozen=True)
class HookQueue:
    """How a hook's deliveries stand."""

    pending: int = 0
    failed: int = 0


# --- written in a change's transaction ------------------------------------------------


def write_events(db: Db, events: Sequence[Event], clock: Clock, row_lock: str = "") -> list[str]:
    """Append ``events`` (in order) with a delivery per hook that wants each; their ids.

    A delivery is due at once when it heads its (hook, service) queue, else ``BLOCKED``
    until the one before it finishes (``finish`` unblocks it): claiming then looks only
    at what is due, however long a queue a dead receiver left behind. ``row_lock`` (on
    PostgreSQL ``FOR UPDATE``) locks the hooks' rows, as ``finish`` does, so a queue's
    head cannot finish unseen between the check and the insert.
    """
    if not events:
        return []
    last = int(
        db.all("UPDATE event_sequence SET seq = seq + ? RETURNING seq", (len(events),))[0]["seq"]
    )
    hooks = load_hooks(db, row_lock)
    now = clock(db)
    ids = [str(uuid.uuid4()) for _ in events]
    first = last - len(events) + 1
    db.run_many(
        "INSERT INTO events (seq, id, type, service, deployment, created_at, body) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                first + i,
                ids[i],
                event.type,
                event.service or "",
                event.deployment,
                now,
                json.dumps(event.document(ids[i]), sort_keys=False),
            )
            for i, event in enumerate(events)
        ],
    )
    queued: set[tuple[str, str]] = set()
    deliveries = []
    for i, event in enumerate(events):
        service = event.service or ""
        for hook in hooks:
            if not hook.wants(event.type):
                continue
            queue = (hook.name, service)
            if queue not in queued:
                queued.add(queue)
                waiting = db.all(
                    "SELECT 1 FROM deliveries WHERE hook = ? AND service = ? "
                    "AND state = 'pending' LIMIT 1",
                    queue,
                )
                due = BLOCKED if waiting else now
            else:
                due = BLOCKED
            deliveries.append((hook.name, first + i, service, due))
    db.run_many(
        "INSERT INTO deliveries (hook, event_seq, service, state, attempts, next_at, "
        "claimed_by, claim, lease_until) VALUES (?, ?, ?, 'pending', 0, ?, '', '', 0)",
        deliveries,
    )
    return ids


# --- hooks ----------------------------------------------------------------------------


def _hook(row: Row) -> Hook:
    return _decoded(
        "hooks",
        row["name"],
        lambda: Hook(
            name=row["name"],
            events=tuple(json.loads(row["events"])),
            timeout_s=float(row["timeout_s"]),
            created_at=row["created_at"],
            created_by=row["created_by"],
            url=row["url"],
            command=tuple(json.loads(row["command"])),
            secret=row["secret"],
        ),
    )


def load_hooks(db: Db, row_lock: str = "") -> tuple[Hook, ...]:
    """Every hook, by name; ``row_lock`` (``FOR UPDATE`` on PostgreSQL) locks their rows."""
    return tuple(_hook(row) for row in db.all(f"SELECT * FROM hooks ORDER BY name{row_lock}"))


def write_hooks(db: Db, before: Iterable[Hook], after: Iterable[Hook]) -> None:
    """Bring the hooks table from ``before`` to ``after``. A hook changed in place (an
    import) keeps its queue; a removed hook's deliveries and attempts go with it
    (nothing would deliver them)."""
    old, new = {h.name: h for h in before}, {h.name: h for h in after}
    removed = [(name,) for name in old if name not in new]
    for table in ("hooks", "deliveries", "attempts"):
        column = "name" if table == "hooks" else "hook"
        db.run_many(f"DELETE FROM {table} WHERE {column} = ?", removed)
    db.run_many(
        "INSERT INTO hooks (name, url, command, secret, events, timeout_s, created_at, "
        "created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
        "url = excluded.url, command = excluded.command, secret = excluded.secret, "
        "events = excluded.events, timeout_s = excluded.timeout_s, "
        "created_at = excluded.created_at, created_by = excluded.created_by",
        [
            (
                h.name,
                h.url,
                json.dumps(list(h.command)),
                h.secret,
                json.dumps(list(h.events)),
                h.timeout_s,
                h.created_at,
                h.created_by,
            )
            for name, h in new.items()
            if old.get(name) != h
        ],
    )


def with_secrets_kept(imported: Iterable[Hook], held: Iterable[Hook]) -> tuple[Hook, ...]:
    """Imported hooks whose secret the export left out get the store's secret for that
    hook; one the store does not hold is refused (nothing could sign its deliveries)."""
    secrets_held = {h.name: h.secret for h in held if h.secret}
    kept = []
    for hook in imported:
        if hook.secret == OMITTED_SECRET:
            if hook.name not in secrets_held:
                raise PreconditionFailed(
                    f"hook {hook.name} signs its deliveries, but the document leaves its "
                    "secret out and this store holds none for it: export with "
                    "--include-secrets, or remove the hook from the document and add it "
                    "again with `xdsctl hooks add ... --secret-file F`"
                )
            hook = dataclasses.replace(hook, secret=secrets_held[hook.name])
        kept.append(hook)
    return tuple(kept)


# --- delivering -----------------------------------------------------------------------


def anything_due(db: Db, clock: Clock) -> bool:
    """Whether a claim would find anything: asked in a read first, so an idle round
    takes no write transaction (nor the writer's lock, nor, after a failed write, the
    store's word that writing works again)."""
    now = clock(db)
    return bool(
        db.all(
            "SELECT 1 FROM deliveries WHERE state = 'pending' AND next_at <= ? "
            "AND lease_until <= ? LIMIT 1",
            (now, now),
        )
    )


def anything_to_prune(db: Db, clock: Clock) -> bool:
    """Whether ``prune`` would forget anything (checked in a read, like ``anything_due``)."""
    cutoff = clock(db) - KEEP_SECONDS
    old = db.all("SELECT 1 FROM events WHERE created_at < ? LIMIT 1", (cutoff,)) or db.all(
        "SELECT 1 FROM attempts WHERE at < ? LIMIT 1", (cutoff,)
    )
    crowded = db.all(
        "SELECT hook FROM attempts GROUP BY hook HAVING COUNT(*) > ? LIMIT 1",
        (MAX_ATTEMPTS_KEPT,),
    )
    return bool(old or crowded)


def claim(
    db: Db,
    replica: str,
    clock: Clock,
    limit: int,
    lock_clause: str,
    lease_margin_s: float,
    room: Mapping[str, int],
    per_hook: int,
) -> list[Claim]:
    """Lease up to ``limit`` due deliveries: each heads its (hook, service) queue (the
    others are ``BLOCKED``), is past its retry time, and leased by nobody (or the lease
    ran out). At most ``room[hook]`` (default ``per_hook``) for each hook, asked hook by
    hook: one hook with many due can take no other hook's turn."""
    now = clock(db)
    hooks = {hook.name: hook for hook in load_hooks(db)}
    rows: list[Row] = []
    for name in hooks:
        wanted = min(room.get(name, per_hook), limit - len(rows))
        if wanted <= 0:
            continue
        # By due time: the (hook, state, next_at) index serves the order, so a claim
        # reads no more than it takes; heads of different queues need no order.
        rows.extend(
            db.all(
                "SELECT d.hook, d.event_seq, d.service, d.attempts, d.first_failure "
                "FROM deliveries d WHERE d.hook = ? AND d.state = 'pending' "
                "AND d.next_at <= ? AND d.lease_until <= ? "
                f"ORDER BY d.next_at LIMIT ?{lock_clause}",
                (name, now, now, wanted),
            )
        )
    if not rows:
        return []
    seqs = sorted({row["event_seq"] for row in rows})
    marks = ", ".join("?" for _ in seqs)
    events = {
        e["seq"]: e
        for e in db.all(f"SELECT seq, id, type, body FROM events WHERE seq IN ({marks})", seqs)
    }
    claims = []
    for row in rows:
        hook, event = hooks[row["hook"]], events[row["event_seq"]]
        token = secrets.token_hex(8)
        db.run(
            "UPDATE deliveries SET claimed_by = ?, claim = ?, lease_until = ? "
            "WHERE hook = ? AND event_seq = ?",
            (replica, token, now + hook.timeout_s + lease_margin_s, hook.name, row["event_seq"]),
        )
        claims.append(
            Claim(
                hook=hook,
                seq=row["event_seq"],
                service=row["service"],
                event_id=event["id"],
                event_type=event["type"],
                body=event["body"].encode(),
                attempt=row["attempts"] + 1,
                first_failure=row["first_failure"],
                token=token,
            )
        )
    return claims


def finish(
    db: Db,
    claimed: Claim,
    outcome: Outcome,
    retry_in: float,
    replica: str,
    clock: Clock,
    row_lock: str = "",
) -> str:
    """Record an attempt and move its delivery on; the state it left it in: delivered,
    pending again ``retry_in`` seconds from now, or failed for good once it has failed
    for ``GIVE_UP_AFTER_SECONDS``. The next of its queue is unblocked once it is no
    longer pending. A claim whose lease another replica took over only records its
    attempt: the delivery is that replica's now."""
    if row_lock:  # serialises with write_events' check of the queue's head
        db.all(f"SELECT name FROM hooks WHERE name = ?{row_lock}", (claimed.hook.name,))
    now = clock(db)
    first_failure = None if outcome.delivered else (claimed.first_failure or now)
    if outcome.delivered:
        state, next_at = DELIVERED, now
    elif gives_up(first_failure or now, now):
        state, next_at = FAILED, now
    else:
        state, next_at = PENDING, now + retry_in
    db.run(
        "UPDATE deliveries SET state = ?, attempts = ?, next_at = ?, first_failure = ?, "
        "lease_until = 0 WHERE hook = ? AND event_seq = ? AND claim = ?",
        (
            state,
            claimed.attempt,
            next_at,
            first_failure,
            claimed.hook.name,
            claimed.seq,
            claimed.token,
        ),
    )
    # The queue's first pending delivery, if blocked, is due now (when this one is
    # still pending, it is that first one, and not blocked: nothing changes).
    db.run(
        "UPDATE deliveries SET next_at = ? WHERE hook = ? AND service = ? "
        "AND state = 'pending' AND next_at = ? AND event_seq = (SELECT MIN(event_seq) "
        "FROM deliveries WHERE hook = ? AND service = ? AND state = 'pending')",
        (now, claimed.hook.name, claimed.service, BLOCKED, claimed.hook.name, claimed.service),
    )
    record_attempt(db, claimed, outcome, state, replica, now)
    return state


def record_attempt(
    db: Db, claimed: Claim, outcome: Outcome, state: str, replica: str, now: float
) -> None:
    """Keep what one try answered (also for ``hooks test``, which has no delivery row)."""
    shown = OUTCOMES[state]
    db.run(
        "INSERT INTO attempts (hook, event_seq, event_id, event_type, attempt, at, outcome, "
        "status, response, replica) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            claimed.hook.name,
            claimed.seq,
            claimed.event_id,
            claimed.event_type,
            claimed.attempt,
            now,
            shown,
            outcome.status,
            outcome.response[:RESPONSE_EXCERPT],
            replica,
        ),
    )


def attempts(db: Db, hook: str, limit: int) -> list[Attempt]:
    """The hook's latest attempts, newest first."""
    return [
        Attempt(
            hook=row["hook"],
            event_id=row["event_id"],
            event_type=row["event_type"],
            attempt=row["attempt"],
            at=row["at"],
            outcome=row["outcome"],
            status=row["status"],
            response=row["response"],
            replica=row["replica"],
        )
        for row in db.all(
            "SELECT * FROM attempts WHERE hook = ? ORDER BY at DESC, attempt DESC LIMIT ?",
            (hook, limit),
        )
    ]


def queues(db: Db) -> dict[str, HookQueue]:
    """Each hook's pending and failed deliveries."""
    counts: dict[str, dict[str, int]] = {}
    for row in db.all(
        "SELECT hook, state, COUNT(*) AS n FROM deliveries "
        "WHERE state IN ('pending', 'failed') GROUP BY hook, state"
    ):
        counts.setdefault(row["hook"], {})[row["state"]] = int(row["n"])
    return {
        hook: HookQueue(pending=n.get(PENDING, 0), failed=n.get(FAILED, 0))
        for hook, n in counts.items()
    }


def scale_confirmations(db: Db, deployment_ids: Sequence[str]) -> dict[str, str]:
    """For each deployment with a scale event: whether a hook confirmed the latest one
    (``confirmed``), is still trying (``pending``), gave up (``failed``), or no hook
    wanted it (``no-hook``)."""
    if not deployment_ids:
        return {}
    marks = ", ".join("?" for _ in deployment_ids)
    latest = db.all(
        "SELECT deployment, MAX(seq) AS seq FROM events "
        f"WHERE type = ? AND deployment IN ({marks}) GROUP BY deployment",
        (DEPLOYMENT_SCALE, *deployment_ids),
    )
    if not latest:
        return {}
    seqs = {row["seq"]: row["deployment"] for row in latest}
    states: dict[str, set[str]] = {deployment: set() for deployment in seqs.values()}
    seq_marks = ", ".join("?" for _ in seqs)
    for row in db.all(
        f"SELECT event_seq, state FROM deliveries WHERE event_seq IN ({seq_marks})", list(seqs)
    ):
        states[seqs[row["event_seq"]]].add(row["state"])
    return {deployment: _confirmation(found) for deployment, found in states.items()}


def _confirmation(states: set[str]) -> str:
    if DELIVERED in states:
        return "confirmed"
    if PENDING in states:
        return "pending"
    return "failed" if FAILED in states else "no-hook"


def prune(db: Db, now: float) -> None:
    """Forget events past ``KEEP_SECONDS`` that nothing still delivers (keeping each
    existing deployment's last scale event), with their deliveries; attempts past it
    too, and beyond ``MAX_ATTEMPTS_KEPT`` per hook."""
    cutoff = now - KEEP_SECONDS
    doomed = (
        "created_at < ? AND seq NOT IN (SELECT event_seq FROM deliveries WHERE state = "
        "'pending') AND seq NOT IN (SELECT MAX(seq) FROM events WHERE type = ? AND "
        "deployment IN (SELECT id FROM deployments) GROUP BY deployment)"
    )
    db.run(
        f"DELETE FROM deliveries WHERE event_seq IN (SELECT seq FROM events WHERE {doomed})",
        (cutoff, DEPLOYMENT_SCALE),
    )
    db.run(f"DELETE FROM events WHERE {doomed}", (cutoff, DEPLOYMENT_SCALE))
    db.run("DELETE FROM attempts WHERE at < ?", (cutoff,))
    for row in db.all(
        "SELECT hook, COUNT(*) AS n FROM attempts GROUP BY hook HAVING COUNT(*) > ?",
        (MAX_ATTEMPTS_KEPT,),
    ):
        keep_after = db.all(
            "SELECT at FROM attempts WHERE hook = ? ORDER BY at DESC LIMIT 1 OFFSET ?",
            (row["hook"], MAX_ATTEMPTS_KEPT - 1),
        )
        if keep_after:  # (the hook may have gone since the count)
            db.run(
                "DELETE FROM attempts WHERE hook = ? AND at < ?", (row["hook"], keep_after[0]["at"])
            )


class Outbox:
    """The outbox's store calls, each in its own transaction on the store's workers.

    None of these bumps the change sequence: delivering changes no world.
    """

    def __init__(
        self,
        read: Callable[[Callable[[Db], Any]], Awaitable[Any]],
        write: Callable[[Callable[[Db], Any]], Awaitable[Any]],
        lock_clause: str = "",
        row_lock: str = "",
        clock: Clock = host_clock,
    ) -> None:
        self._read = read
        self._write = write
        self.clock = clock
        # PostgreSQL's ``FOR UPDATE OF d SKIP LOCKED``: replicas claiming at once skip
        # each other's rows instead of waiting on them. SQLite has one writer.
        self._lock_clause = lock_clause
        # PostgreSQL's ``FOR UPDATE``: a hook's row, locked by whatever writes its queues.
        self.row_lock = row_lock

    async def hooks(self) -> tuple[Hook, ...]:
        result: tuple[Hook, ...] = await self._read(load_hooks)
        return result

    async def record(self, events: Sequence[Event]) -> list[str]:
        """Append events no change carries (an Envoy's NACK)."""
        ids: list[str] = await self._write(
            lambda db: write_events(db, events, self.clock, self.row_lock)
        )
        return ids

    async def claim(
        self,
        replica: str,
        limit: int,
        lease_margin_s: float,
        room: Mapping[str, int],
        per_hook: int,
    ) -> list[Claim]:
        if not await self._read(lambda db: anything_due(db, self.clock)):
            return []
        claims: list[Claim] = await self._write(
            lambda db: claim(
                db, replica, self.clock, limit, self._lock_clause, lease_margin_s, room, per_hook
            )
        )
        return claims

    async def finish(self, claimed: Claim, outcome: Outcome, retry_in: float, replica: str) -> str:
        """Record the attempt; the state it left the delivery in."""
        state: str = await self._write(
            lambda db: finish(db, claimed, outcome, retry_in, replica, self.clock, self.row_lock)
        )
        return state

    async def record_attempt(
        self, claimed: Claim, outcome: Outcome, state: str, replica: str
    ) -> None:
        await self._write(
            lambda db: record_attempt(db, claimed, outcome, state, replica, self.clock(db))
        )

    async def attempts(self, hook: str, limit: int) -> list[Attempt]:
        found: list[Attempt] = await self._read(lambda db: attempts(db, hook, limit))
        return found

    async def queues(self) -> dict[str, HookQueue]:
        found: dict[str, HookQueue] = await self._read(queues)
        return found

    async def scale_confirmations(self, deployment_ids: Sequence[str]) -> dict[str, str]:
        ids = list(deployment_ids)
        found: dict[str, str] = await self._read(lambda db: scale_confirmations(db, ids))
        return found

    async def release_leases(self) -> None:
        """Forget every lease: for a store only this process uses (a state file), where
        any lease left is a previous run's, killed mid-delivery."""
        await self._write(
            lambda db: db.run("UPDATE deliveries SET lease_until = 0 WHERE state = 'pending'")
        )

    async def prune(self) -> None:
        if await self._read(lambda db: anything_to_prune(db, self.clock)):
            await self._write(lambda db: prune(db, self.clock(db)))
