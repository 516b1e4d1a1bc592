"""The operator gRPC service: requests in, model operations through the store, replies out.

No business rule lives here: each method converts its request, runs one
operation of ``xds_server.model.operations`` and converts the result. Every
write goes through the one commit path (``xds_server.api.commit``); status
and ``--wait`` read the fleet view (``xds_server.api.fleet``). Refusals become
gRPC statuses at the boundary (``xds_server.api.handler``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import grpc
import structlog
from google.protobuf.message import Message

from xds_server import __version__
from xds_server.api import audit, convert
from xds_server.api.call import Call, now
from xds_server.api.commit import CommitPath
from xds_server.api.describe import (
    describe_apply,
    describe_change_rollout,
    describe_configure_service,
    describe_promote,
    describe_rollback,
    describe_set_traffic,
    describe_start_rollout,
)
from xds_server.api.fleet import FleetView
from xds_server.api.hooks_api import HookRpcs
from xds_server.api.metadata import MAX_WAIT_SECONDS
from xds_server.api.rollout_requests import rollout_action, rollout_spec
from xds_server.api.sync_counts import connected_in_sync
from xds_server.api.traffic_metrics import checked_window, traffic_metrics
from xds_server.auth.roles import parse_role
from xds_server.auth.tokens import (
    TokenRecord,
    new_token,
    token_hash,
    validate_token_name,
    with_token,
    without_token,
)
from xds_server.errors import InvalidRequest, PreconditionFailed, StoreUnavailable
from xds_server.model import operations as ops
from xds_server.model.names import validate_dns_label
from xds_server.model.operations import HistoryReader
from xds_server.model.state import DEFAULT_SERVICE, World
from xds_server.replication.follower import StateFollower
from xds_server.store.base import ChangeFunction, Store
from xds_server.store.state_document import state_from_json, state_to_json
from xds_server.traffic.windows import TrafficWindows
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc

log = structlog.get_logger(__name__)

T = TypeVar("T")
ReplyT = TypeVar("ReplyT", bound=Message)
RpcContext: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
# A watched view is read again this often; only a change is sent.
WATCH_POLL_SECONDS = 0.25


def _service_name(name: str) -> str:
    return validate_dns_label("service name", name or DEFAULT_SERVICE)


def _traffic_view(world: World, service: str) -> pb.Traffic:
    return convert.traffic_to_pb(ops.traffic_of(world, _service_name(service)))


def _rollout_view(world: World, name: str) -> pb.Rollout:
    service = _service_name(name)
    return convert.rollout_to_pb(ops.rollout_of(world, service), service)


def _endpoints_of(world: World, deployment_id: str) -> list[str] | None:
    """A deployment's endpoints for the audit log; None once it is gone."""
    deployment = world.deployments.get(deployment_id)
    return [str(e) for e in deployment.endpoints] if deployment else None


def _domains_of(world: World, service: str) -> list[str] | None:
    """A service's domains for the audit log; None before it exists."""
    return list(world.services[service].domains) if service in world.services else None


def _traffic_reply(change: ops.Change[ops.TrafficResult]) -> pb.TrafficChange:
    return pb.TrafficChange(
        traffic=convert.traffic_to_pb(change.result.traffic),
        warnings=change.result.warnings,
        unchanged=change.result.unchanged,
    )


def _secret_shown_once(first: pb.CreateTokenResponse) -> pb.CreateTokenResponse:
    """A repeated CreateToken: the token exists, but its secret went to the first attempt."""
    raise PreconditionFailed(
        f"this request already created token {first.info.name}, and its secret was "
        "shown once, to that first attempt: if it is lost, revoke the token "
        f"(`xdsctl tokens revoke {first.info.name}`) and create another"
    )


class OperatorServicer(operator_pb2_grpc.OperatorServicer):
    """Serves ``xds_server.v1.Operator`` on top of a ``Store`` (see ``operator_handler``).

    Each public method is the RPC of that name, documented in
    ``protos/xds_server/v1/operator.proto``.
    """

    def __init__(
        self,
        store: Store,
        follower: StateFollower,
        commits: CommitPath,
        fleet: FleetView,
        snapshot_problems: Callable[[World], list[str]],
        new_id: Callable[[], str],
        forget_token: Callable[[str], None],
        traffic: TrafficWindows,
        hooks: HookRpcs,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        # The replica's published state: reads fall back to it when the
        # database is unavailable.
        self._follower = follower
        self._commits = commits
        self._fleet = fleet
        # Why a world's snapshot would break Envoy: checked before an import.
        self._snapshot_problems = snapshot_problems
        self._new_id = new_id
        # Drops a token this replica revoked from its in-memory book at once.
        self._forget_token = forget_token
        # The Envoys' live traffic, as their stats sinks stream it to this replica.
        self._traffic = traffic
        self._hooks = hooks
        self._clock = clock

    async def _world(self) -> World:
        """The current world; during a database outage, this replica's last published one."""
        try:
            return await self._store.load()
        except StoreUnavailable:
            if self._follower.world is None:
                raise
            log.info("operator.read_from_snapshot", sequence=self._follower.sequence)
            return self._follower.world

    def _context(self, actor: str, command: str) -> ops.Context:
        return ops.Context(
            actor=actor, now=now(), command=command, new_id=self._new_id, clock=self._clock()
        )

    async def _published(self) -> World:
        """The world this replica serves: what a watcher follows. Read from memory, so a
        watcher polling it costs no store query; a change reaches it when published."""
        world = self._follower.world
        return world if world is not None else await self._world()

    async def _revision_change(
        self,
        call: Call,
        command: str,
        operation: Callable[[World, HistoryReader, ops.Context], ops.Change[T]],
        reply: Callable[[ops.Change[T]], ReplyT],
    ) -> ReplyT:
        """Commit a change that makes revisions: one audit record per revision."""
        ctx = self._context(call.actor, command)
        return await self._commits.change_world(
            call,
            lambda world, history: operation(world, history, ctx),
            lambda _before, change: audit.revisions(change, command),
            reply,
        )

    async def _unversioned_change(
        self,
        call: Call,
        subject: str,
        change: ChangeFunction[T],
        view: Callable[[World], Any],
        reply: Callable[[T], ReplyT],
    ) -> ReplyT:
        """Commit a change that makes no revision, audited as ``view`` of the world
        before and after."""
        return await self._commits.change_world(
            call,
            change,
            lambda before, change: [audit.before_after(subject, view(before), view(change.world))],
            lambda change: reply(change.result),
        )

    async def Apply(self, request: pb.ApplyRequest, context: RpcContext) -> pb.ApplyResponse:
        service = _service_name(request.service)
        endpoints = convert.endpoints_from_pb(request.endpoints)
        return await self._revision_change(
            Call.of(request, context),
            describe_apply(request),
            lambda world, _history, ctx: ops.apply_deployment(
                world,
                ctx,
                service=service,
                endpoints=endpoints,
                labels=[(label.key, label.value) for label in request.labels],
                deployment_tag=(
                    request.deployment_tag if request.HasField("deployment_tag") else None
                ),
                bluegreen=request.bluegreen,
                if_revision=convert.if_revision(request),
                in_place=request.in_place,
            ),
            lambda change: convert.apply_to_pb(change.result),
        )

    async def SetTraffic(
        self, request: pb.SetTrafficRequest, context: RpcContext
    ) -> pb.TrafficChange:
        mirrors = convert.mirrors_from_pb(request.mirrors)
        service = _service_name(request.service)
        return await self._revision_change(
            Call.of(request, context),
            describe_set_traffic(request),
            lambda world, _history, ctx: ops.set_traffic(
                world,
                ctx,
                service=service,
                weights=[(w.tag, w.weight) for w in request.weights],
                mirrors=mirrors,
                sticky_header=convert.optional(request, "sticky_header"),
                if_revision=convert.if_revision(request),
                force=request.force,
            ),
            _traffic_reply,
        )

    async def PromoteTraffic(
        self, request: pb.PromoteTrafficRequest, context: RpcContext
    ) -> pb.TrafficChange:
        service = _service_name(request.service)
        return await self._revision_change(
            Call.of(request, context),
            describe_promote(request),
            lambda world, _history, ctx: ops.promote(
                world,
                ctx,
                service=service,
                to_tag=request.to_tag or None,
                if_revision=convert.if_revision(request),
                force=request.force,
            ),
            _traffic_reply,
        )

    async def RollbackTraffic(
        self, request: pb.RollbackTrafficRequest, context: RpcContext
    ) -> pb.TrafficChange:
        if request.to_revision < 0:
            raise InvalidRequest(f"--to-revision must be 1 or more (got {request.to_revision})")
        service = _service_name(request.service)
        return await self._revision_change(
            Call.of(request, context),
            describe_rollback(request),
            lambda world, history, ctx: ops.rollback(
                world,
                history,
                ctx,
                service=service,
                to_revision=request.to_revision if request.HasField("to_revision") else None,
                if_revision=convert.if_revision(request),
                force=request.force,
            ),
            _traffic_reply,
        )

    async def GetTraffic(self, request: pb.GetTrafficRequest, context: RpcContext) -> pb.Traffic:
        return _traffic_view(await self._world(), request.service)

    async def GetTrafficMetrics(
        self, request: pb.GetTrafficMetricsRequest, context: RpcContext
    ) -> pb.TrafficMetrics:
        service = _service_name(request.service)
        window = checked_window(request.window_seconds, self._traffic.horizon)
        world = await self._world()
        return traffic_metrics(world, service, self._traffic, window, self._clock())

    async def StartRollout(
        self, request: pb.StartRolloutRequest, context: RpcContext
    ) -> pb.Rollout:
        service = _service_name(request.service)
        spec = rollout_spec(request)
        return await self._rollout_change(
            Call.of(request, context),
            describe_start_rollout(request),
            lambda world, ctx: ops.start_rollout(world, ctx, service=service, spec=spec),
            service,
        )

    async def _rollout_change(
        self,
        call: Call,
        command: str,
        operation: Callable[[World, ops.Context], ops.Change[ops.RolloutResult]],
        service: str,
    ) -> pb.Rollout:
        """Commit a rollout transition, audited as one (plus its revision, if any)."""
        ctx = self._context(call.actor, command)
        return await self._commits.change_world(
            call,
            lambda world, _history: operation(world, ctx),
            lambda _before, change: audit.rollout_moved(change, command),
            lambda change: convert.rollout_to_pb(change.result, service),
        )

    async def ChangeRollout(
        self, request: pb.ChangeRolloutRequest, context: RpcContext
    ) -> pb.Rollout:
        service = _service_name(request.service)
        command = describe_change_rollout(request)
        step = rollout_action(request, command)
        return await self._rollout_change(
            Call.of(request, context),
            command,
            lambda world, ctx: ops.step_rollout(
                world, ctx, service=service, step=lambda r: step(r, ctx.clock)
            ),
            service,
        )

    async def GetRollout(self, request: pb.GetRolloutRequest, context: RpcContext) -> pb.Rollout:
        return _rollout_view(await self._world(), request.service)

    async def ListRollouts(
        self, request: pb.ListRolloutsRequest, context: RpcContext
    ) -> pb.ListRolloutsResponse:
        world = await self._world()
        names = sorted(n for n, s in world.services.items() if s.rollout is not None)
        return pb.ListRolloutsResponse(
            rollouts=[convert.rollout_to_pb(ops.rollout_of(world, n), n) for n in names]
        )

    async def Watch(
        self, request: pb.WatchRequest, context: RpcContext
    ) -> AsyncIterator[pb.WatchEvent]:
        view = self._watched(request)
        last = b""
        while True:
            event = await view()
            data = event.SerializeToString()
            if data != last:
                last = data
                yield event
            await asyncio.sleep(WATCH_POLL_SECONDS)

    def _watched(self, request: pb.WatchRequest) -> Callable[[], Awaitable[pb.WatchEvent]]:
        """How to read the view a Watch asks for (refused at once when it names none)."""
        service = request.service

        async def traffic() -> pb.WatchEvent:
            return pb.WatchEvent(traffic=_traffic_view(await self._published(), service))

        async def rollout() -> pb.WatchEvent:
            return pb.WatchEvent(rollout=_rollout_view(await self._published(), service))

        async def status() -> pb.WatchEvent:
            return pb.WatchEvent(status=await self._status_view())

        views = {"traffic": traffic, "rollout": rollout, "status": status}
        if request.view not in views:
            raise InvalidRequest(f"watch view {request.view!r} is not traffic, rollout or status")
        return views[request.view]

    async def ListHistory(
        self, request: pb.ListHistoryRequest, context: RpcContext
    ) -> pb.ListHistoryResponse:
        service = _service_name(request.service)
        if request.limit < 0:
            raise InvalidRequest(f"--limit must be 1 or more (got {request.limit})")
        ops.get_service(await self._world(), service)
        entries = await self._store.history(service, request.limit or None)
        return pb.ListHistoryResponse(entries=[convert.history_to_pb(e) for e in entries])

    async def ListDeployments(
        self, request: pb.ListDeploymentsRequest, context: RpcContext
    ) -> pb.ListDeploymentsResponse:
        world = await self._world()
        if request.service:
            deployments = world.deployments_of(ops.get_service(world, request.service).name)
        else:
            deployments = sorted(world.deployments.values(), key=lambda d: (d.service, d.id))
        scale = await self._store.outbox.scale_confirmations([d.id for d in deployments])
        return pb.ListDeploymentsResponse(
            deployments=[convert.deployment_to_pb(d, scale.get(d.id, "")) for d in deployments]
        )

    async def GetDeployment(
        self, request: pb.GetDeploymentRequest, context: RpcContext
    ) -> pb.Deployment:
        world = await self._world()
        return convert.deployment_to_pb(ops.get_deployment(world, request.id))

    async def SetEndpoints(
        self, request: pb.SetEndpointsRequest, context: RpcContext
    ) -> pb.Deployment:
        endpoints = convert.endpoints_from_pb(request.endpoints)
        return await self._unversioned_change(
            Call.of(request, context),
            request.id,
            lambda world, _history: ops.set_endpoints(
                world, deployment_id=request.id, endpoints=endpoints
            ),
            lambda world: _endpoints_of(world, request.id),
            convert.deployment_to_pb,
        )

    async def DeleteDeployment(
        self, request: pb.DeleteDeploymentRequest, context: RpcContext
    ) -> pb.Deployment:
        return await self._unversioned_change(
            Call.of(request, context),
            request.id,
            lambda world, _history: ops.delete_deployment(world, deployment_id=request.id),
            lambda world: _endpoints_of(world, request.id),
            convert.deployment_to_pb,
        )

    async def SetServiceDomains(
        self, request: pb.SetServiceDomainsRequest, context: RpcContext
    ) -> pb.SetServiceDomainsResponse:
        return await self._unversioned_change(
            Call.of(request, context),
            request.service,
            lambda world, _history: ops.set_domains(
                world, service=request.service, domains=list(request.domains)
            ),
            lambda world: _domains_of(world, request.service),
            lambda result: pb.SetServiceDomainsResponse(
                service=convert.service_to_pb(result.service), created=result.created
            ),
        )

    async def ConfigureService(
        self, request: pb.ConfigureServiceRequest, context: RpcContext
    ) -> pb.ConfigureServiceResponse:
        routing = ops.RoutingChange(
            override_header=convert.optional(request, "override_header"),
            shadow_header=convert.optional(request, "shadow_header"),
            mirror_host_suffix=convert.optional(request, "mirror_host_suffix"),
        )
        command = describe_configure_service(request)
        call = Call.of(request, context)
        ctx = self._context(call.actor, command)
        return await self._commits.change_world(
            call,
            lambda world, _history: ops.configure_service(
                world,
                ctx,
                service=request.service,
                domains=list(request.domains),
                routing=routing,
                if_revision=convert.if_revision(request),
            ),
            lambda before, change: audit.configured(before, change, command, request.service),
            lambda change: pb.ConfigureServiceResponse(
                service=convert.service_to_pb(change.result.service),
                created=change.result.created,
                changed=change.result.changed,
            ),
        )

    async def ListServices(
        self, request: pb.ListServicesRequest, context: RpcContext
    ) -> pb.ListServicesResponse:
        world = await self._world()
        services = sorted(world.services.values(), key=lambda s: s.name)
        return pb.ListServicesResponse(services=[convert.service_to_pb(s) for s in services])

    async def GetVersion(
        self, request: pb.GetVersionRequest, context: RpcContext
    ) -> pb.VersionInfo:
        return pb.VersionInfo(version=__version__)

    async def GetStatus(
        self, request: pb.GetStatusRequest, context: RpcContext
    ) -> pb.GetStatusResponse:
        if request.counts_only:
            connected, in_sync = await self._fleet.counts()
            return self._status_reply([], connected, in_sync)
        return await self._status_view()

    async def _status_view(self) -> pb.GetStatusResponse:
        nodes = await self._fleet.nodes()
        return self._status_reply(nodes, *connected_in_sync(nodes))

    def _status_reply(
        self, nodes: list[pb.NodeStatus], connected: int, in_sync: int
    ) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(
            nodes=nodes,
            store=self._store.health.describe(),
            change=max(self._follower.sequence, 0),
            connected=connected,
            in_sync=in_sync,
        )

    async def WaitForSync(
        self, request: pb.WaitForSyncRequest, context: RpcContext
    ) -> pb.WaitForSyncResponse:
        if not 0 < request.timeout_seconds <= MAX_WAIT_SECONDS:
            raise InvalidRequest(
                f"--timeout must be above 0 and at most {MAX_WAIT_SECONDS / 3600:.0f}h "
                f"(got {request.timeout_seconds:g}s)"
            )
        if request.min_envoys < 0:
            raise InvalidRequest(f"--min-envoys must be 0 or more (got {request.min_envoys})")
        return await self._fleet.wait_for_sync(request.timeout_seconds, request.min_envoys)

    async def ExportState(
        self, request: pb.ExportStateRequest, context: RpcContext
    ) -> pb.ExportStateResponse:
        dump = await self._store.export()
        return pb.ExportStateResponse(document=state_to_json(dump, request.include_secrets))

    async def ImportState(
        self, request: pb.ImportStateRequest, context: RpcContext
    ) -> pb.ImportStateResponse:
        dump = state_from_json(request.document)
        problems = self._snapshot_problems(dump.world)
        if problems:
            raise InvalidRequest(
                "the state document would give Envoy a config it rejects, so nothing was "
                f"imported: {'; '.join(problems[:10])}"
            )
        return await self._commits.import_state(
            Call.of(request, context),
            dump,
            request.replace,
            lambda _none: pb.ImportStateResponse(
                services=len(dump.world.services),
                deployments=len(dump.world.deployments),
                history_entries=len(dump.history),
            ),
        )

    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: RpcContext
    ) -> pb.CreateTokenResponse:
        call = Call.of(request, context)
        token = new_token()
        record = TokenRecord(
            name=validate_token_name(request.name),
            role=parse_role(request.role),
            sha256=token_hash(token),
            created_at=now(),
            created_by=call.actor,
        )
        return await self._commits.edit_tokens(
            call,
            f"tokens create --name {record.name} --role {record.role.label}",
            record.name,
            lambda tokens: with_token(tokens, record),
            lambda _tokens: pb.CreateTokenResponse(info=convert.token_to_pb(record), token=token),
            # The store keeps hashes only: a repeat is told the token exists, not its secret.
            remembered=lambda reply: pb.CreateTokenResponse(info=reply.info),
            replayed=_secret_shown_once,
        )

    async def ListTokens(
        self, request: pb.ListTokensRequest, context: RpcContext
    ) -> pb.ListTokensResponse:
        return pb.ListTokensResponse(
            tokens=[convert.token_to_pb(t) for t in await self._store.tokens()]
        )

    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: RpcContext
    ) -> pb.TokenInfo:
        revoked: list[TokenRecord] = []

        def edit(tokens: tuple[TokenRecord, ...]) -> tuple[TokenRecord, ...]:
            revoked[:] = [t for t in tokens if t.name == request.name]
            return without_token(tokens, request.name)

        call = Call.of(request, context)
        info = await self._commits.edit_tokens(
            call,
            f"tokens revoke {request.name}",
            request.name,
            edit,
            lambda _tokens: convert.token_to_pb(revoked[0]),
        )
        if revoked and not call.dry_run:
            # Refused here from now on, even if reading the tokens back just failed.
            self._forget_token(revoked[0].sha256)
        return info

    async def AddHook(self, request: pb.AddHookRequest, context: RpcContext) -> pb.Hook:
        return await self._hooks.add(request, Call.of(request, context))

    async def ListHooks(
        self, request: pb.ListHooksRequest, context: RpcContext
    ) -> pb.ListHooksResponse:
        return await self._hooks.list()

    async def RemoveHook(self, request: pb.RemoveHookRequest, context: RpcContext) -> pb.Hook:
        return await self._hooks.remove(request, Call.of(request, context))

    async def TestHook(self, request: pb.TestHookRequest, context: RpcContext) -> pb.HookAttempt:
        return await self._hooks.test(request, Call.of(request, context))

    async def ListHookDeliveries(
        self, request: pb.ListHookDeliveriesRequest, context: RpcContext
    ) -> pb.ListHookDeliveriesResponse:
        return await self._hooks.deliveries(request)
