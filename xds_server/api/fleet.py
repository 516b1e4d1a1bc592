"""The fleet as the operator API shows it: this replica's Envoys and the other replicas'.

``xdsctl status`` and ``--wait`` read the same view: the local node registry
and, with several replicas on one database, the fleet board the others post to.
"""

from __future__ import annotations

import asyncio
import time

from xds_server.api import convert
from xds_server.api.sync_counts import connected_in_sync
from xds_server.errors import StoreUnavailable
from xds_server.replication.board import FleetBoard
from xds_server.replication.posted import PostedNode
from xds_server.v1 import operator_pb2 as pb
from xds_server.xds.registry import NodeRegistry, WaitResult

# How often a fleet-wide wait looks at the other replicas' Envoys (the board is
# posted every 0.25 s).
FLEET_POLL_SECONDS = 0.2


def _lagging(result: WaitResult) -> list[pb.NodeStatus]:
    return [convert.node_status_to_pb(record, sync) for record, sync in result.lagging]


class FleetView:
    """Every Envoy this replica can vouch for, and waiting until they hold the config."""

    def __init__(self, registry: NodeRegistry, board: FleetBoard | None) -> None:
        # This replica's Envoys: their ACKs wake a wait at once.
        self._registry = registry
        # The other replicas' Envoys; None: this replica is the only one (SQLite).
        self._board = board

    async def nodes(self) -> list[pb.NodeStatus]:
        """Every Envoy, connected or recently gone, by node id."""
        nodes = [convert.node_status_to_pb(r) for r in self._registry.nodes()]
        nodes += await self._elsewhere()
        return sorted(nodes, key=lambda n: n.node_id)

    async def counts(self) -> tuple[int, int]:
        """(connected, in sync) over every Envoy, without building their statuses."""
        local = [record for record in self._registry.nodes() if record.connected]
        remote, remote_in_sync = connected_in_sync(await self._posted_elsewhere())
        return (
            len(local) + remote,
            sum(record.sync().in_sync for record in local) + remote_in_sync,
        )

    async def wait_for_sync(self, timeout: float, min_envoys: int) -> pb.WaitForSyncResponse:
        """Until every connected Envoy (at least ``min_envoys``) holds the current config,
        one rejected it, or ``timeout`` seconds passed."""
        if self._board is None:
            result = await self._registry.wait_for_sync(timeout, min_envoys)
            return pb.WaitForSyncResponse(
                done=result.done,
                seconds=result.seconds,
                envoys=result.envoys,
                lagging=_lagging(result),
            )
        return await self._wait_fleet_wide(timeout, min_envoys)

    async def _elsewhere(self) -> list[pb.NodeStatus]:
        """Other replicas' Envoys, as the status reply lists them."""
        return [convert.posted_to_pb(node) for node in await self._posted_elsewhere()]

    async def _posted_elsewhere(self) -> list[PostedNode]:
        """Other replicas' Envoys (none without a fleet board, or while the store is away)."""
        if self._board is None:
            return []
        try:
            return await self._board.elsewhere()
        except StoreUnavailable:
            return []  # the database is away: this replica's Envoys only

    async def _wait_fleet_wide(self, timeout: float, min_envoys: int) -> pb.WaitForSyncResponse:
        """This replica's Envoys (woken by their ACKs), then the others' as posted on the
        fleet board, polled until in sync or out of time."""
        started = time.monotonic()
        while True:
            remaining = max(timeout - (time.monotonic() - started), 0.001)
            local = await self._registry.wait_for_sync(remaining, 0)
            remote = [n for n in await self._elsewhere() if n.connected]
            lagging = [n for n in remote if not n.in_sync]
            envoys = local.envoys + len(remote)
            done = local.done and not lagging and envoys >= min_envoys
            elapsed = time.monotonic() - started
            if done or not local.done or elapsed >= timeout:
                return pb.WaitForSyncResponse(
                    done=done, seconds=elapsed, envoys=envoys, lagging=_lagging(local) + lagging
                )
            await asyncio.sleep(FLEET_POLL_SECONDS)
