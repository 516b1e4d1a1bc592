"""A node's status as the fleet board stores it: the board's own format, not the
operator API's, so either can change without the other."""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass

from xds_server.xds.registry import NodeRecord, Sync
from xds_server.xds.resources import SHORT_NAMES


@dataclass(frozen=True)
class PostedType:
    """What one type of a node holds, and what it should hold."""

    type: str  # short name: lds, rds, cds, eds
    acked_version: str
    current_version: str


@dataclass(frozen=True)
class PostedNack:
    """The last NACK of one type."""

    type: str
    version: str
    message: str
    time: str  # RFC 3339, UTC


@dataclass(frozen=True)
class PostedNode:
    """Everything ``xdsctl status`` shows of one node, as one replica saw it."""

    node_id: str
    cluster: str
    peer: str
    mode: str  # "sotw" or "delta"; empty when disconnected
    connected: bool
    connected_since: str
    disconnected_at: str
    in_sync: bool
    reason: str
    types: tuple[PostedType, ...] = ()
    nacks: tuple[PostedNack, ...] = ()
    # The newest change the node held all of (rows from before: 0, unknown).
    change: int = 0


def rfc3339(seconds: float | None) -> str:
    """A Unix time as RFC 3339 in UTC, to the second; empty for none."""
    if not seconds:
        return ""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="seconds")


def posted_node(record: NodeRecord, sync: Sync | None = None) -> PostedNode:
    """A node's status; ``sync`` saves computing it twice when the caller has it."""
    stream = record.stream
    sync = sync or record.sync()
    return PostedNode(
        node_id=record.node_id,
        cluster=record.cluster,
        peer=stream.peer if stream else "",
        mode=stream.mode if stream else "",
        connected=record.connected,
        connected_since=rfc3339(record.connected_since),
        disconnected_at=rfc3339(record.disconnected_at),
        in_sync=sync.in_sync,
        reason=sync.reason,
        change=record.change,
        types=tuple(
            PostedType(SHORT_NAMES[view.type_url], view.acked, view.current)
            for view in (stream.type_views() if stream else [])
        ),
        nacks=tuple(
            PostedNack(
                SHORT_NAMES.get(type_url, type_url), nack.version, nack.message, rfc3339(nack.at)
            )
            for type_url, nack in sorted(record.last_nack.items())
        ),
    )


def encode(node: PostedNode) -> str:
    """The board row's ``status`` column."""
    return json.dumps(dataclasses.asdict(node), sort_keys=True, separators=(",", ":"))


def decode(text: str) -> PostedNode:
    """A board row's ``status`` column back; raises ``ValueError`` on a foreign row."""
    fields = json.loads(text)
    try:
        return PostedNode(
            **{
                **fields,
                "types": tuple(PostedType(**t) for t in fields["types"]),
                "nacks": tuple(PostedNack(**n) for n in fields["nacks"]),
            }
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"not a posted node status: {error}") from error
