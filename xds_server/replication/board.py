"""The fleet board: replicas on one PostgreSQL database share their Envoys' status.

Each replica posts, for every Envoy connected to it, the status `xdsctl
status` shows and its CSDS config (without resource contents: the reading
replica fills them in from its own cache, versions being content hashes),
with the change sequence it has published: when something changed, and a bare
heartbeat every ``HEARTBEAT_SECONDS``. Through any replica, status, ``--wait``
and CSDS then cover every Envoy of every live replica. An Envoy counts as in
sync only if its replica is in sync *and* has published at least the reading
replica's sequence: a replica that has not yet loaded a change cannot vouch
for it. A replica whose heartbeat is older than
``FRESH_SECONDS`` is left out (its Envoys reconnect to a live one); replicas
are assumed to have clocks in sync (NTP).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import structlog
from envoy.service.status.v3 import csds_pb2
from google.protobuf.message import DecodeError

from xds_server.errors import StoreUnavailable
from xds_server.replication import posted
from xds_server.replication.follower import StateFollower
from xds_server.replication.posted import PostedNode
from xds_server.store.base import BoardStorage
from xds_server.xds.csds import posted_parts
from xds_server.xds.registry import NodeRegistry

log = structlog.get_logger(__name__)

POST_SECONDS = 0.25
HEARTBEAT_SECONDS = 2.0
FRESH_SECONDS = 6.0


class FleetBoard:
    """Posts this replica's Envoys to the shared store and reads the others'."""

    def __init__(
        self, store: BoardStorage, registry: NodeRegistry, follower: StateFollower
    ) -> None:
        self.replica = uuid.uuid4().hex
        self._store = store
        self._registry = registry
        self._follower = follower
        self._posted: tuple[int, int] | None = None  # (registry changes, sequence)
        self._posted_at = 0.0
        # What each posted CSDS part (node, type) showed: unchanged ones are not resent.
        self._shown: dict[tuple[str, str], object] = {}

    async def run(self) -> None:
        """Post whenever the local fleet changed, and heartbeat; until cancelled."""
        while True:
            await asyncio.sleep(POST_SECONDS)
            state = (self._registry.changes, self._follower.sequence)
            unchanged = state == self._posted
            if unchanged and time.time() - self._posted_at < HEARTBEAT_SECONDS:
                continue
            # Unchanged: only the heartbeat (statuses of thousands of Envoys
            # are not rebuilt while nothing happens).
            statuses, parts, shown = (None, [], {}) if unchanged else self._fleet()
            now = time.time()
            try:
                await self._store.post_fleet(self.replica, now, state[1], statuses, parts)
            except StoreUnavailable:
                continue  # recorded in the store's health; try again next round
            self._posted, self._posted_at = state, now
            if statuses is not None:
                self._shown = shown

    def _fleet(
        self,
    ) -> tuple[
        list[tuple[str, str, bytes]], list[tuple[str, str, bytes]], dict[tuple[str, str], object]
    ]:
        """Every connected node's status and CSDS identity, the CSDS parts that changed
        since the last post, and what every part now shows."""
        statuses, parts, shown = [], [], {}
        for record in self._registry.connected():
            node, typed = posted_parts(record)
            statuses.append((record.node_id, posted.encode(posted.posted_node(record)), node))
            for type_url, (key, chunk) in typed.items():
                shown[(record.node_id, type_url)] = key
                if self._shown.get((record.node_id, type_url)) != key:
                    parts.append((record.node_id, type_url, chunk))
        return statuses, parts, shown

    async def elsewhere_configs(self) -> list[csds_pb2.ClientConfig]:
        """The CSDS configs of every other live replica's Envoys, without resource contents."""
        fresh_after = time.time() - FRESH_SECONDS
        nodes = await self._store.fleet_elsewhere(self.replica, fresh_after)
        parts: dict[tuple[str, str], list[bytes]] = {}
        for row in await self._store.fleet_parts_elsewhere(self.replica, fresh_after):
            parts.setdefault((row["replica"], row["node_id"]), []).append(bytes(row["part"]))
        configs = []
        for row in nodes:
            if not row["csds"]:
                continue
            chunks = [bytes(row["csds"]), *parts.get((row["replica"], row["node_id"]), [])]
            try:
                configs.append(csds_pb2.ClientConfig.FromString(b"".join(chunks)))
            except DecodeError as error:
                # A row this version cannot read: leave it out of CSDS, say so once here.
                log.warning("fleet.unreadable_row", node=row["node_id"], error=str(error))
        return configs

    async def elsewhere(self) -> list[PostedNode]:
        """The Envoys of every other live replica, judged against this replica's state."""
        rows = await self._store.fleet_elsewhere(self.replica, time.time() - FRESH_SECONDS)
        nodes = []
        for row in rows:
            try:
                node = posted.decode(row["status"])
            except ValueError as error:
                # A row this version cannot read: its Envoy is shown, and waited for,
                # as not in sync, never left out (a --wait must not pass without it).
                log.warning("fleet.unreadable_row", node=row["node_id"], error=str(error))
                node = _unreadable(row["node_id"])
            if node.in_sync and row["sequence"] < self._follower.sequence:
                reason = "its replica has not loaded the current config yet"
                node = dataclasses.replace(node, in_sync=False, reason=reason)
            nodes.append(node)
        return nodes


def _unreadable(node_id: str) -> PostedNode:
    return PostedNode(
        node_id=node_id,
        cluster="",
        peer="",
        mode="",
        connected=True,
        connected_since="",
        disconnected_at="",
        in_sync=False,
        reason="its replica posted a status this version cannot read (another version?)",
    )
