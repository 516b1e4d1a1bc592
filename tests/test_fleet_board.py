"""The fleet board on its own: its row format, and how a replica judges what the
others posted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import json_format

from xds_server.replication import posted
from xds_server.replication.board import FleetBoard
from xds_server.replication.posted import PostedNack, PostedNode, PostedType
from xds_server.store.base import Row
from xds_server.v1 import operator_pb2 as pb
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


# What the previous version posted: the operator API's NodeStatus as protobuf JSON.
OLD_FORMAT = json_format.MessageToJson(pb.NodeStatus(node_id="edge-0", in_sync=True))


@pytest.mark.parametrize("row", ['{"node_id": "x"}', '{"status": {}}', "[]", OLD_FORMAT])
def test_a_row_another_version_wrote_is_refused_by_name(row: str) -> None:
    with pytest.raises(ValueError, match="not a posted node status"):
        posted.decode(row)


class _Posts:
    """What other replicas posted: board rows, as the store returns them."""

    def __init__(self, rows: list[Row], parts: list[Row] | None = None) -> None:
        self.rows = rows
        self.parts = parts or []

    async def fleet_elsewhere(self, replica: str, fresh_after: float) -> list[Row]:
        return self.rows

    async def fleet_parts_elsewhere(self, replica: str, fresh_after: float) -> list[Row]:
        return self.parts

    async def post_fleet(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("this test only reads")


class _Follower:
    sequence = 7


def _row(node_id: str, sequence: int, status: str, csds: bytes = b"") -> Row:
    return {
        "replica": "r2",
        "node_id": node_id,
        "sequence": sequence,
        "status": status,
        "csds": csds,
    }


def test_a_replica_behind_this_one_cannot_vouch_for_its_envoys() -> None:
    """An Envoy in sync with a replica that has not loaded this replica's sequence is
    shown out of sync, with the reason; one whose replica is current stays in sync; a
    row this version cannot read is shown as not in sync, never left out (a --wait
    would otherwise pass without that Envoy)."""
    store = _Posts(
        [
            _row("behind", 6, posted.encode(NODE)),
            _row("current", 7, posted.encode(NODE)),
            _row("foreign", 7, OLD_FORMAT),
        ]
    )
    board = FleetBoard(store, NodeRegistry(), _Follower())  # type: ignore[arg-type]
    nodes = asyncio.run(board.elsewhere())
    assert [(n.node_id, n.in_sync, n.reason) for n in nodes] == [
        ("edge-1", False, "its replica has not loaded the current config yet"),
        ("edge-1", True, ""),
        (
            "foreign",
            False,
            "its replica posted a status this version cannot read (another version?)",
        ),
    ]


def test_csds_configs_join_their_parts_and_skip_what_does_not_decode() -> None:
    """A node's CSDS identity and its per-type parts concatenate into one ClientConfig
    (bytes from PostgreSQL may come as memoryview); bytes that are not one are left out."""
    identity = csds_pb2.ClientConfig(node=base_pb2.Node(id="edge-1")).SerializeToString()
    part = csds_pb2.ClientConfig(
        generic_xds_configs=[csds_pb2.ClientConfig.GenericXdsConfig(name="routes")]
    ).SerializeToString()
    store = _Posts(
        [
            _row("edge-1", 7, posted.encode(NODE), identity),
            _row("edge-2", 7, posted.encode(NODE), b"\xff\xff\xff"),
        ],
        [{"replica": "r2", "node_id": "edge-1", "part": memoryview(part)}],
    )
    board = FleetBoard(store, NodeRegistry(), _Follower())  # type: ignore[arg-type]
    [config] = asyncio.run(board.elsewhere_configs())
    assert config.node.id == "edge-1"
    assert [c.name for c in config.generic_xds_configs] == ["routes"]
