"""Client Status Discovery Service: each node's config and status, for standard tooling.

Envoy does not serve CSDS itself; the control plane answers from what it knows
each node holds (what it ACKed) and how that compares to the current config.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc

from xds_server.errors import StoreUnavailable
from xds_server.xds.cache import SnapshotCache
from xds_server.xds.registry import NodeRecord, NodeRegistry
from xds_server.xds.report import StreamReport
from xds_server.xds.resources import ResourceSet
from xds_server.xds.subscription import Subscription

GenericXdsConfig = csds_pb2.ClientConfig.GenericXdsConfig


def _matches(node_id: str, request: csds_pb2.ClientStatusRequest) -> bool:
    """Node matchers on the node id: exact or prefix; no matcher matches every node."""
    if not request.node_matchers:
        return True
    for matcher in request.node_matchers:
        wanted = matcher.node_id
        if wanted.exact and node_id == wanted.exact:
            return True
        if wanted.prefix and node_id.startswith(wanted.prefix):
            return True
        if not wanted.exact and not wanted.prefix:
            return True
    return False


def _report(record: NodeRecord) -> StreamReport | None:
    """The report of the node's newest stream. The registry knows streams only as
    ``StreamView``s; a stream's own report is the one that says what its node holds."""
    view = record.stream
    return view if isinstance(view, StreamReport) else None


def client_config(record: NodeRecord, with_contents: bool = True) -> csds_pb2.ClientConfig:
    """What the node holds, resource by resource, with SYNCED / STALE / ERROR per type."""
    config = csds_pb2.ClientConfig(node=base_pb2.Node(id=record.node_id, cluster=record.cluster))
    report = _report(record)
    if report is None:
        return config
    for state, target in report.requested():
        config.generic_xds_configs.extend(_entries(record, state, target, with_contents))
    return config


def _entries(
    record: NodeRecord, state: Subscription, target: ResourceSet | None, with_contents: bool
) -> list[Any]:
    type_url = state.type_url
    nack = record.last_nack.get(type_url)
    rejected = target is not None and nack is not None and nack.version == target.version
    synced = target is not None and target.version == state.held_version
    status = csds_pb2.ERROR if rejected else csds_pb2.SYNCED if synced else csds_pb2.STALE
    entries = []
    for name, resource in sorted((state.held or {}).items()):
        entry = GenericXdsConfig(
            type_url=type_url,
            name=name,
            version_info=resource.version if resource else "",
            config_status=status,
            client_status=dump_pb2.NACKED if rejected else dump_pb2.ACKED,
        )
        if with_contents and resource is not None:
            entry.xds_config.CopyFrom(resource.packed)
        if rejected and nack is not None:
            entry.error_state.details = nack.message
            entry.error_state.version_info = nack.version
        entries.append(entry)
    return entries


def posted_parts(record: NodeRecord) -> tuple[bytes, dict[str, tuple[object, bytes]]]:
    """``client_config(record, with_contents=False)`` for the fleet board, serialised in
    parts that concatenate into it (repeated fields concatenate on the wire): the node,
    and per type its entries with a key of what they show. A type's part is kept on
    the stream's report while that stays the same, so a weight change re-encodes the
    one route table, not 20,000 clusters, and the board rewrites that part only."""
    node = csds_pb2.ClientConfig(node=base_pb2.Node(id=record.node_id, cluster=record.cluster))
    parts: dict[str, tuple[object, bytes]] = {}
    report = _report(record)
    if report is None:
        return node.SerializeToString(), parts
    for state, target in report.requested():
        type_url = state.type_url
        nack = record.last_nack.get(type_url)
        shows = (
            id(state.held),
            len(state.held or ()),
            state.held_version,
            target.version if target is not None else None,
            (nack.version, nack.message) if nack is not None else None,
        )
        kept = report.posted_parts.get(type_url)
        if kept is None or kept[0] != shows:
            entries = _entries(record, state, target, with_contents=False)
            chunk = csds_pb2.ClientConfig(generic_xds_configs=entries).SerializeToString()
            kept = report.posted_parts[type_url] = (shows, chunk)
        parts[type_url] = kept
    return node.SerializeToString(), parts


# Other replicas' Envoys' configs, without resource contents (see FleetBoard).
Elsewhere = Callable[[], Awaitable[list[csds_pb2.ClientConfig]]]


# Envoy's generated service stubs ship without types: its base class is Any to mypy.
class ClientStatusService(csds_pb2_grpc.ClientStatusDiscoveryServiceServicer):  # type: ignore[misc]
    """``envoy.service.status.v3.ClientStatusDiscoveryService`` from the node registry
    (and, with replicas, from the other replicas' posts)."""

    def __init__(
        self,
        registry: NodeRegistry,
        cache: SnapshotCache | None = None,
        elsewhere: Elsewhere | None = None,
    ) -> None:
        self.registry = registry
        self._cache = cache
        self._elsewhere = elsewhere

    async def _status(self, request: csds_pb2.ClientStatusRequest) -> csds_pb2.ClientStatusResponse:
        contents = not request.exclude_resource_contents
        configs = [
            client_config(record, contents)
            for record in self.registry.nodes()
            if _matches(record.node_id, request)
        ]
        if self._elsewhere is not None:
            try:
                remote = await self._elsewhere()
            except StoreUnavailable:
                remote = []  # the database is away: this replica's Envoys only
            for config in remote:
                if _matches(config.node.id, request):
                    if contents:
                        self._fill_contents(config)
                    configs.append(config)
        return csds_pb2.ClientStatusResponse(config=sorted(configs, key=lambda c: c.node.id))

    def _fill_contents(self, config: csds_pb2.ClientConfig) -> None:
        """Resources by their (content-hashed) versions, from this replica's cache."""
        if self._cache is None:
            return
        for entry in config.generic_xds_configs:
            known = self._cache.known_resource(entry.type_url, entry.name, entry.version_info)
            if known is not None:
                entry.xds_config.CopyFrom(known.packed)

    async def FetchClientStatus(
        self, request: csds_pb2.ClientStatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> csds_pb2.ClientStatusResponse:
        return await self._status(request)

    async def StreamClientStatus(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[csds_pb2.ClientStatusResponse]:
        async for request in request_iterator:
            yield await self._status(request)
