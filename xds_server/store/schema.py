"""The schema both stores share, and the migrations that bring a file or database
to it. Run inside the caller's transaction, on a worker thread."""

from __future__ import annotations

import structlog

from xds_server.errors import StateError
from xds_server.store.rows import Db

log = structlog.get_logger(__name__)

# The schema, identical on both engines. Migration N brings it from version N
# to N + 1. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE services (
        name     TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        weights  TEXT NOT NULL,
        mirrors  TEXT NOT NULL
    );
    CREATE TABLE domains (
        domain   TEXT PRIMARY KEY,
        service  TEXT NOT NULL REFERENCES services(name),
        position INTEGER NOT NULL
    );
    CREATE TABLE deployments (
        id         TEXT PRIMARY KEY,
        service    TEXT NOT NULL REFERENCES services(name),
        created_at TEXT NOT NULL,
        endpoints  TEXT NOT NULL,
        labels     TEXT NOT NULL,
        tag        TEXT,
        state      TEXT NOT NULL CHECK (state IN ('active', 'scaled_down'))
    );
    CREATE UNIQUE INDEX deployments_service_tag ON deployments (service, tag)
        WHERE tag IS NOT NULL;
    CREATE TABLE history (
        service  TEXT NOT NULL REFERENCES services(name),
        revision INTEGER NOT NULL,
        time     TEXT NOT NULL,
        actor    TEXT NOT NULL,
        command  TEXT NOT NULL,
        before   TEXT NOT NULL,
        after    TEXT NOT NULL,
        PRIMARY KEY (service, revision)
    );
    """,
    # One global change sequence, bumped by every write: replicas compare it
    # to what they have loaded, and on PostgreSQL its row lock serialises
    # writers across replicas.
    """
    CREATE TABLE change_sequence (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL
    );
    INSERT INTO change_sequence (id, seq) VALUES (1, 0);
    """,
    # The fleet board: each replica posts its Envoys' status and a heartbeat,
    # so status and --wait through any replica cover every Envoy.
    """
    CREATE TABLE replicas (
        id           TEXT PRIMARY KEY,
        heartbeat_at DOUBLE PRECISION NOT NULL
    );
    CREATE TABLE node_status (
        replica  TEXT NOT NULL,
        node_id  TEXT NOT NULL,
        sequence BIGINT NOT NULL,
        status   TEXT NOT NULL,
        PRIMARY KEY (replica, node_id)
    );
    """,
    # And each Envoy's CSDS config (without resource contents: any replica
    # fills those in from its own cache, the versions being content hashes).
    """
    ALTER TABLE node_status ADD COLUMN csds TEXT NOT NULL DEFAULT '';
    """,
    # API tokens, as SHA-256 hashes only. Token changes bump the change
    # sequence like any other write, so every replica reloads them at once.
    """
    CREATE TABLE tokens (
        name       TEXT PRIMARY KEY,
        role       TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
        sha256     TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    """,
    # Request ids of recent writes with their replies (base64 protobuf), so a
    # retried write is answered, not applied twice, on any replica.
    """
    CREATE TABLE requests (
        id          TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        reply       TEXT NOT NULL,
        created_at  DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX requests_created_at ON requests (created_at);
    """,
    # The change log: which services each change touched, so a replica that
    # missed changes reloads those services only, not the whole world.
    # "everything": an import replaced the whole state.
    """
    CREATE TABLE changes (
        seq        BIGINT PRIMARY KEY,
        services   TEXT NOT NULL,
        tokens     INTEGER NOT NULL,
        everything INTEGER NOT NULL
    );
    """,
    # The fleet board's CSDS configs, one row per node and type (base64 of a
    # ClientConfig holding that type's entries): a change rewrites the parts it
    # changed (the route table's), not every cluster of every node.
    """
    CREATE TABLE node_parts (
        replica  TEXT NOT NULL,
        node_id  TEXT NOT NULL,
        type_url TEXT NOT NULL,
        part     TEXT NOT NULL,
        PRIMARY KEY (replica, node_id, type_url)
    );
    """,
    # The board in its own format: statuses as the board writes them (not the
    # operator API's JSON), CSDS in bytes (not base64). New tables, not the old
    # ones altered: replicas of the previous version, still running during a
    # rolling upgrade, keep posting to node_status/node_parts, which this version
    # neither reads nor drops (a later migration does). BYTEA is PostgreSQL's
    # type; SQLite, where the board never runs, accepts the name.
    """
    CREATE TABLE board_nodes (
        replica  TEXT NOT NULL,
        node_id  TEXT NOT NULL,
        sequence BIGINT NOT NULL,
        status   TEXT NOT NULL,
        csds     BYTEA NOT NULL,
        PRIMARY KEY (replica, node_id)
    );
    CREATE TABLE board_parts (
        replica  TEXT NOT NULL,
        node_id  TEXT NOT NULL,
        type_url TEXT NOT NULL,
        part     BYTEA NOT NULL,
        PRIMARY KEY (replica, node_id, type_url)
    );
    """,
    # Each service's routing settings (override, sticky and shadow headers) as
    # JSON; '' (rows from before) reads as the defaults.
    """
    ALTER TABLE services ADD COLUMN routing TEXT NOT NULL DEFAULT '';
    """,
    # Each service's rollout (JSON; '' for none), and why the control plane made a
    # revision itself (a rollout step, an abort).
    """
    ALTER TABLE services ADD COLUMN rollout TEXT NOT NULL DEFAULT '';
    ALTER TABLE history ADD COLUMN reason TEXT NOT NULL DEFAULT '';
    """,
    # The outbox: every event is written in its change's transaction, with one
    # delivery row per hook that wants it; deliveries are claimed with a lease
    # (claimed_by, lease_until) so one replica delivers each, and another takes
    # over when the lease runs out. event_sequence orders events in commit order
    # (its row lock, taken inside the change's transaction, serialises writers).
    # attempts keeps what each try answered, for `xdsctl hooks deliveries`.
    """
    CREATE TABLE event_sequence (
        id  INTEGER PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL
    );
    INSERT INTO event_sequence (id, seq) VALUES (1, 0);
    CREATE TABLE events (
        seq        BIGINT PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        type       TEXT NOT NULL,
        service    TEXT NOT NULL,
        deployment TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        body       TEXT NOT NULL
    );
    CREATE INDEX events_deployment ON events (deployment, type);
    CREATE TABLE hooks (
        name       TEXT PRIMARY KEY,
        url        TEXT NOT NULL,
        command    TEXT NOT NULL,
        secret     TEXT NOT NULL,
        events     TEXT NOT NULL,
        timeout_s  DOUBLE PRECISION NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        hook          TEXT NOT NULL,
        event_seq     BIGINT NOT NULL,
        service       TEXT NOT NULL,
        state         TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts      INTEGER NOT NULL,
        next_at       DOUBLE PRECISION NOT NULL,
        first_failure DOUBLE PRECISION,
        claimed_by    TEXT NOT NULL,
        claim         TEXT NOT NULL,
        lease_until   DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (hook, event_seq)
    );
    CREATE INDEX deliveries_queue ON deliveries (hook, service, state, event_seq);
    CREATE INDEX deliveries_due ON deliveries (state, next_at);
    CREATE TABLE attempts (
        hook       TEXT NOT NULL,
        event_seq  BIGINT NOT NULL,
        event_id   TEXT NOT NULL,
        event_type TEXT NOT NULL,
        attempt    INTEGER NOT NULL,
        at         DOUBLE PRECISION NOT NULL,
        outcome    TEXT NOT NULL,
        status     TEXT NOT NULL,
        response   TEXT NOT NULL,
        replica    TEXT NOT NULL
    );
    CREATE INDEX attempts_hook ON attempts (hook, at);
    """,
    # Claims are asked hook by hook in due order, and an idle round asks whether
    # anything at all is pending and due: one index for each. The pending-only one
    # leaves out delivered, failed and blocked rows, which are most of the table.
    """
    DROP INDEX deliveries_due;
    CREATE INDEX deliveries_hook_due ON deliveries (hook, state, next_at);
    CREATE INDEX deliveries_pending_due ON deliveries (next_at) WHERE state = 'pending';
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """A migration's statements (none of ours contains a ``;`` inside a literal)."""
    return [statement for statement in script.split(";") if statement.strip()]


def migrate(db: Db, version: int, where: str) -> None:
    """Run the migrations from schema ``version`` on (inside the caller's transaction).

    ``where`` names the file or database for the error a newer schema gets.
    """
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{where} has schema version {version}, newer than this xds_server knows "
            f"({SCHEMA_VERSION}): run the newer version"
        )
    for step in range(version, SCHEMA_VERSION):
        for statement in statements(MIGRATIONS[step]):
            db.run(statement)
        log.info("store.migrated", store=where, schema_version=step + 1)
