"""The fleet board on its own: its row format, and how a replica judges what the
others posted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from xds_server.replication import posted
from xds_server.replication.board import FleetBoard
from xds_server.replication.posted import PostedNack, PostedNode, PostedType
from xds_server.store.base import Row
from xds_server.xds.registry import NodeRegistry

NODE = PostedNode(
    node_id="edge-1",
    cluster="edge",
    peer="ipv4:10.0.0.7:4242",
    mode="delta",
    connected=True,
    connected_since="2026-12-01T10:00:00+00:00",
    disconnected_at="",
    in_sync=True,
    reason="",
    types=(PostedType("cds", "v1", "v1"), PostedType("rds", "r2", "r2")),
    nacks=(PostedNack("rds", "r1", "unknown cluster", "2026-12-01T09:59:00+00:00"),),
)


def test_a_posted_status_reads_back_as_written() -> None:
    assert posted.decode(posted.encode(NODE)) == NODE


@pytest.mark.parametrize("row", ['{"node_id": "x"}', '{"status": {}}', "[]"])
def test_a_row_another_version_wrote_is_refused_by_name(row: str) -> None:
    with pytest.raises(ValueError, match="not a posted node status"):
        posted.decode(row)


class _Posts:
    """What other replicas posted: board rows, as the store returns them."""

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    async def fleet_elsewhere(self, replica: str, fresh_after: float) -> list[Row]:
        return self.rows

    async def fleet_parts_elsewhere(self, replica: str, fresh_after: float) -> list[Row]:
        return []

    async def post_fleet(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("this test only reads")


class _Follower:
    sequence = 7


def _row(node_id: str, sequence: int, status: str) -> Row:
    return {"replica": "r2", "node_id": node_id, "sequence": sequence, "status": status}


def test_a_replica_behind_this_one_cannot_vouch_for_its_envoys() -> None:
    """An Envoy in sync with a replica that has not loaded this replica's sequence is
    shown out of sync, with the reason; one whose replica is current stays in sync; a
    row that does not decode is left out."""
    store = _Posts(
        [
            _row("behind", 6, posted.encode(NODE)),
            _row("current", 7, posted.encode(NODE)),
            _row("foreign", 7, '{"node_id": "foreign"}'),
        ]
    )
    board = FleetBoard(store, NodeRegistry(), _Follower())  # type: ignore[arg-type]
    nodes = asyncio.run(board.elsewhere())
    assert [(n.in_sync, n.reason) for n in nodes] == [
        (False, "its replica has not loaded the current config yet"),
        (True, ""),
    ]
