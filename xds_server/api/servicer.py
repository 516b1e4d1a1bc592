"""The operator gRPC service: requests in, model operations through the store, replies out.

No business rule lives here: each method converts its request, runs one
operation of ``xds_server.model.operations`` in a store transaction and
converts the result. Model errors become gRPC status codes at this boundary.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog

from xds_server.api import convert
from xds_server.api.describe import (
    describe_apply,
    describe_promote,
    describe_rollback,
    describe_set_traffic,
)
from xds_server.api.metadata import ACTOR_METADATA_KEY
from xds_server.api.statuses import status_of
from xds_server.auth.identity import current_identity
from xds_server.auth.roles import parse_role
from xds_server.auth.tokens import (
    TokenRecord,
    new_token,
    token_hash,
    validate_token_name,
    with_token,
    without_token,
)
from xds_server.errors import (
    InvalidRequest,
    StoreUnavailable,
    XdsServerError,
)
from xds_server.fleet_board import FleetBoard
from xds_server.follower import StateFollower
from xds_server.ids import DeploymentIdGenerator
from xds_server.lenient import Unparsable, lenient
from xds_server.metrics import Metrics
from xds_server.model import operations as ops
from xds_server.model.names import validate_dns_label
from xds_server.model.operations import HistoryReader
from xds_server.model.state import DEFAULT_SERVICE, Picture, World
from xds_server.store.base import ChangeFunction, Store, TokenEdit
from xds_server.store.document import state_from_json, state_to_json
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc
from xds_server.xds.status import NodeRegistry

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_WAIT_SECONDS = 3600.0
# How often --wait looks at the other replicas' Envoys (the board is posted every 0.25 s).
FLEET_POLL_SECONDS = 0.2
Request = TypeVar("Request")
Reply = TypeVar("Reply")
Method = Callable[[Any, Request, grpc.aio.ServicerContext], Awaitable[Reply]]


def _refusals_as_status(method: Method[Request, Reply]) -> Method[Request, Reply]:
    """Turn a refused request into its gRPC status, with the model's message; count both."""

    @functools.wraps(method)
    async def wrapper(self: Any, request: Request, context: grpc.aio.ServicerContext) -> Reply:
        try:
            reply = await method(self, request, context)
        except XdsServerError as error:
            code = status_of(error)
            log.info("operator.refused", method=method.__name__, code=code.name, error=str(error))
            self._count(method.__name__, code.name.lower())
            await context.abort(code, str(error))
            raise  # abort() raises; this line only satisfies type checkers
        self._count(method.__name__, "ok")
        return reply

    return wrapper


def picture_summary(picture: Picture) -> dict[str, Any]:
    """A picture as plain fields for an audit record."""
    return {
        "weights": dict(picture.policy.weights),
        "mirrors": {m.tag: m.percent for m in picture.policy.mirrors},
        "bindings": dict(picture.bindings),
    }


def _endpoints_of(world: World, deployment_id: str) -> list[str] | None:
    """A deployment's endpoints for the audit log; None once it is gone."""
    deployment = world.deployments.get(deployment_id)
    return [str(e) for e in deployment.endpoints] if deployment else None


def _service_name(name: str) -> str:
    return validate_dns_label("service name", name or DEFAULT_SERVICE)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")


def _actor(context: grpc.aio.ServicerContext) -> str:
    """Who the audit log and history name: the authenticated identity, with the user
    the client says it runs as (unverified, but useful with a shared CI token); on a
    server that has no token yet, only that claim (or the peer address)."""
    metadata = dict(context.invocation_metadata() or ())
    claimed = str(metadata.get(ACTOR_METADATA_KEY) or context.peer())
    identity = current_identity()
    if identity is None or not identity.authenticated:
        return claimed
    return f"{identity.name} ({claimed})"


def _credential() -> str | None:
    """The caller's token hash, re-checked inside the write transaction."""
    identity = current_identity()
    return identity.credential if identity is not None else None


class OperatorServicer(operator_pb2_grpc.OperatorServicer):
    """Serves ``xds_server.v1.Operator`` on top of a ``Store``."""

    def __init__(
        self,
        store: Store,
        on_change: Callable[[], Awaitable[None]] | None = None,
        new_id: Callable[[], str] | None = None,
        fleet: NodeRegistry | None = None,
        metrics: Metrics | None = None,
        follower: StateFollower | None = None,
        board: FleetBoard | None = None,
        forget_token: Callable[[str], None] = lambda _sha256: None,
    ) -> None:
        self._store = store
        # Drops a token this replica revoked from its in-memory book at once.
        self._forget_token = forget_token
        # The replica's published state: reads fall back to it when the
        # database is unavailable.
        self._follower = follower
        # With several replicas: the other replicas' Envoys, for status and --wait.
        self._board = board
        self._on_change = on_change
        self._new_id = new_id or DeploymentIdGenerator()
        self._fleet = fleet or NodeRegistry()
        self._metrics = metrics

    def _count(self, method: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.on_operator_request(method, result)

    async def _transact(self, change: ChangeFunction[T]) -> ops.Change[T]:
        """Commit a change, then hand the new world on (to the xDS snapshot) before replying.

        So when a call returns, the change is both durable and being pushed.
        """
        committed = await self._store.transact(change, _credential())
        if self._on_change is not None:
            await self._on_change()
        return committed

    async def _world(self) -> World:
        """The current world; during a database outage, this replica's last published one."""
        try:
            return await self._store.load()
        except StoreUnavailable:
            if self._follower is None or self._follower.world is None:
                raise
            log.info("operator.read_from_snapshot", sequence=self._follower.sequence)
            return self._follower.world

    def _context(self, context: grpc.aio.ServicerContext, command: str) -> ops.Context:
        return ops.Context(actor=_actor(context), now=_now(), command=command, new_id=self._new_id)

    def _audit(self, change: ops.Change[Any], method: str, ctx: ops.Context) -> None:
        """One audit record per revision: who, what, and the picture before and after."""
        for entry in change.history:
            log.info(
                "operator.change",
                method=method,
                actor=ctx.actor,
                command=ctx.command,
                service=entry.service,
                revision=entry.revision,
                before=picture_summary(entry.before),
                after=picture_summary(entry.after),
            )

    @_refusals_as_status
    async def Apply(self, request: pb.ApplyRequest, context: Any) -> pb.ApplyResponse:
        ctx = self._context(context, describe_apply(request))
        service = _service_name(request.service)
        endpoints = convert.endpoints_from_pb(request.endpoints)
        change = await self._transact(
            lambda world, _history: ops.apply_deployment(
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
            )
        )
        self._audit(change, "Apply", ctx)
        result = change.result
        return pb.ApplyResponse(
            deployment=convert.deployment_to_pb(result.deployment),
            weight=result.weight,
            replaced_deployment_id=result.replaced_deployment_id or "",
            revision=result.revision,
            warnings=result.warnings,
        )

    async def _traffic_change(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        command: str,
        service_name: str,
        operation: Callable[
            [World, HistoryReader, ops.Context, str], ops.Change[ops.TrafficResult]
        ],
    ) -> pb.TrafficChange:
        """The shared path of set, promote and rollback: commit, audit, reply with the traffic."""
        ctx = self._context(context, command)
        service = _service_name(service_name)
        change = await self._transact(
            lambda world, history: operation(world, history, ctx, service)
        )
        self._audit(change, method, ctx)
        return pb.TrafficChange(
            traffic=convert.traffic_to_pb(change.result.traffic),
            warnings=change.result.warnings,
        )

    @_refusals_as_status
    async def SetTraffic(self, request: pb.SetTrafficRequest, context: Any) -> pb.TrafficChange:
        mirrors = convert.mirrors_from_pb(request.mirrors)
        return await self._traffic_change(
            context,
            "SetTraffic",
            describe_set_traffic(request),
            request.service,
            lambda world, _history, ctx, service: ops.set_traffic(
                world,
                ctx,
                service=service,
                weights=[(w.tag, w.weight) for w in request.weights],
                mirrors=mirrors,
                if_revision=convert.if_revision(request),
            ),
        )

    @_refusals_as_status
    async def PromoteTraffic(
        self, request: pb.PromoteTrafficRequest, context: Any
    ) -> pb.TrafficChange:
        return await self._traffic_change(
            context,
            "PromoteTraffic",
            describe_promote(request),
            request.service,
            lambda world, _history, ctx, service: ops.promote(
                world,
                ctx,
                service=service,
                to_tag=request.to_tag or None,
                if_revision=convert.if_revision(request),
            ),
        )

    @_refusals_as_status
    async def RollbackTraffic(
        self, request: pb.RollbackTrafficRequest, context: Any
    ) -> pb.TrafficChange:
        if request.to_revision < 0:
            raise InvalidRequest(f"--to-revision must be 1 or more (got {request.to_revision})")
        return await self._traffic_change(
            context,
            "RollbackTraffic",
            describe_rollback(request),
            request.service,
            lambda world, history, ctx, service: ops.rollback(
                world,
                history,
                ctx,
                service=service,
                to_revision=request.to_revision or None,
                if_revision=convert.if_revision(request),
            ),
        )

    @_refusals_as_status
    async def GetTraffic(self, request: pb.GetTrafficRequest, context: Any) -> pb.Traffic:
        world = await self._world()
        return convert.traffic_to_pb(ops.traffic_of(world, _service_name(request.service)))

    @_refusals_as_status
    async def ListHistory(
        self, request: pb.ListHistoryRequest, context: Any
    ) -> pb.ListHistoryResponse:
        service = _service_name(request.service)
        if request.limit < 0:
            raise InvalidRequest(f"--limit must be 1 or more (got {request.limit})")
        ops.get_service(await self._world(), service)
        entries = await self._store.history(service, request.limit or None)
        return pb.ListHistoryResponse(entries=[convert.history_to_pb(e) for e in entries])

    @_refusals_as_status
    async def ListDeployments(
        self, request: pb.ListDeploymentsRequest, context: Any
    ) -> pb.ListDeploymentsResponse:
        world = await self._world()
        if request.service:
            deployments = world.deployments_of(ops.get_service(world, request.service).name)
        else:
            deployments = sorted(world.deployments.values(), key=lambda d: (d.service, d.id))
        return pb.ListDeploymentsResponse(
            deployments=[convert.deployment_to_pb(d) for d in deployments]
        )

    @_refusals_as_status
    async def GetDeployment(self, request: pb.GetDeploymentRequest, context: Any) -> pb.Deployment:
        world = await self._world()
        return convert.deployment_to_pb(ops.get_deployment(world, request.id))

    async def _audited(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        subject: str,
        change: ChangeFunction[T],
        view: Callable[[World], Any],
    ) -> ops.Change[T]:
        """Commit a change that has no revision, logging ``view`` of the world before and after."""
        before: list[Any] = []

        def recorded(world: World, history: HistoryReader) -> ops.Change[T]:
            before.append(view(world))
            return change(world, history)

        committed = await self._transact(recorded)
        log.info(
            "operator.change",
            method=method,
            actor=self._context(context, method).actor,
            subject=subject,
            before=before[0],
            after=view(committed.world),
        )
        return committed

    @_refusals_as_status
    async def SetEndpoints(self, request: pb.SetEndpointsRequest, context: Any) -> pb.Deployment:
        endpoints = convert.endpoints_from_pb(request.endpoints)
        change = await self._audited(
            context,
            "SetEndpoints",
            request.id,
            lambda world, _history: ops.set_endpoints(
                world, deployment_id=request.id, endpoints=endpoints
            ),
            lambda world: _endpoints_of(world, request.id),
        )
        return convert.deployment_to_pb(change.result)

    @_refusals_as_status
    async def DeleteDeployment(
        self, request: pb.DeleteDeploymentRequest, context: Any
    ) -> pb.Deployment:
        change = await self._audited(
            context,
            "DeleteDeployment",
            request.id,
            lambda world, _history: ops.delete_deployment(world, deployment_id=request.id),
            lambda world: _endpoints_of(world, request.id),
        )
        return convert.deployment_to_pb(change.result)

    @_refusals_as_status
    async def SetServiceDomains(
        self, request: pb.SetServiceDomainsRequest, context: Any
    ) -> pb.SetServiceDomainsResponse:
        change = await self._audited(
            context,
            "SetServiceDomains",
            request.service,
            lambda world, _history: ops.set_domains(
                world, service=request.service, domains=list(request.domains)
            ),
            lambda world: (
                list(world.services[request.service].domains)
                if request.service in world.services
                else None
            ),
        )
        return pb.SetServiceDomainsResponse(
            service=convert.service_to_pb(change.result.service), created=change.result.created
        )

    async def _elsewhere(self) -> list[pb.NodeStatus]:
        """Other replicas' Envoys (none without a fleet board, or while the store is away)."""
        if self._board is None:
            return []
        try:
            return await self._board.elsewhere()
        except StoreUnavailable:
            return []  # the database is away: this replica's Envoys only

    @_refusals_as_status
    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        nodes = [convert.node_status_to_pb(r) for r in self._fleet.nodes()]
        nodes += await self._elsewhere()
        return pb.GetStatusResponse(
            nodes=sorted(nodes, key=lambda n: n.node_id),
            store=self._store.health.describe(),
        )

    @_refusals_as_status
    async def WaitForSync(
        self, request: pb.WaitForSyncRequest, context: Any
    ) -> pb.WaitForSyncResponse:
        if not 0 < request.timeout_seconds <= MAX_WAIT_SECONDS:
            raise InvalidRequest(
                f"--timeout must be above 0 and at most {MAX_WAIT_SECONDS:.0f}s "
                f"(got {request.timeout_seconds:g}s)"
            )
        if request.min_envoys < 0:
            raise InvalidRequest(f"--min-envoys must be 0 or more (got {request.min_envoys})")
        if self._board is None:
            result = await self._fleet.wait_for_sync(request.timeout_seconds, request.min_envoys)
            return pb.WaitForSyncResponse(
                done=result.done,
                seconds=result.seconds,
                envoys=result.envoys,
                lagging=[convert.node_status_to_pb(r, s) for r, s in result.lagging],
            )
        return await self._wait_fleet_wide(request.timeout_seconds, request.min_envoys)

    async def _wait_fleet_wide(self, timeout: float, min_envoys: int) -> pb.WaitForSyncResponse:
        """--wait across replicas: this one's Envoys (woken by their ACKs), then the others'
        as posted on the fleet board, polled until in sync or out of time."""
        started = time.monotonic()
        while True:
            remaining = max(timeout - (time.monotonic() - started), 0.001)
            local = await self._fleet.wait_for_sync(remaining, 0)
            remote = [n for n in await self._elsewhere() if n.connected]
            lagging = [n for n in remote if not n.in_sync]
            envoys = local.envoys + len(remote)
            done = local.done and not lagging and envoys >= min_envoys
            elapsed = time.monotonic() - started
            if done or not local.done or elapsed >= timeout:
                return pb.WaitForSyncResponse(
                    done=done,
                    seconds=elapsed,
                    envoys=envoys,
                    lagging=[convert.node_status_to_pb(r, s) for r, s in local.lagging] + lagging,
                )
            await asyncio.sleep(FLEET_POLL_SECONDS)

    @_refusals_as_status
    async def ExportState(
        self, request: pb.ExportStateRequest, context: Any
    ) -> pb.ExportStateResponse:
        return pb.ExportStateResponse(document=state_to_json(await self._store.export()))

    @_refusals_as_status
    async def ImportState(
        self, request: pb.ImportStateRequest, context: grpc.aio.ServicerContext
    ) -> pb.ImportStateResponse:
        dump = state_from_json(request.document)
        await self._store.import_state(dump, replace=request.replace, credential=_credential())
        ctx = self._context(context, "state import")
        log.info(
            "operator.state_imported",
            actor=ctx.actor,
            replace=request.replace,
            services=len(dump.world.services),
            deployments=len(dump.world.deployments),
            history_entries=len(dump.history),
            tokens=len(dump.tokens),
        )
        if self._on_change is not None:
            await self._on_change()
        return pb.ImportStateResponse(
            services=len(dump.world.services),
            deployments=len(dump.world.deployments),
            history_entries=len(dump.history),
        )

    async def _edit_tokens(
        self, context: grpc.aio.ServicerContext, command: str, subject: str, edit: TokenEdit
    ) -> None:
        """Commit a token change, log it (never the secret) and reload every replica's book."""
        await self._store.edit_tokens(edit, _credential())
        log.info("operator.tokens_changed", actor=_actor(context), command=command, token=subject)
        if self._on_change is not None:
            await self._on_change()

    @_refusals_as_status
    async def CreateToken(
        self, request: pb.CreateTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTokenResponse:
        token = new_token()
        record = TokenRecord(
            name=validate_token_name(request.name),
            role=parse_role(request.role),
            sha256=token_hash(token),
            created_at=_now(),
            created_by=_actor(context),
        )
        await self._edit_tokens(
            context,
            f"tokens create --name {record.name} --role {record.role.label}",
            record.name,
            lambda tokens: with_token(tokens, record),
        )
        return pb.CreateTokenResponse(info=convert.token_to_pb(record), token=token)

    @_refusals_as_status
    async def ListTokens(
        self, request: pb.ListTokensRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTokensResponse:
        return pb.ListTokensResponse(
            tokens=[convert.token_to_pb(t) for t in await self._store.tokens()]
        )

    @_refusals_as_status
    async def RevokeToken(
        self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext
    ) -> pb.TokenInfo:
        revoked: list[TokenRecord] = []

        def edit(tokens: tuple[TokenRecord, ...]) -> tuple[TokenRecord, ...]:
            revoked.extend(t for t in tokens if t.name == request.name)
            return without_token(tokens, request.name)

        await self._edit_tokens(context, f"tokens revoke {request.name}", request.name, edit)
        # Refused here from now on, even if reading the tokens back just failed.
        self._forget_token(revoked[0].sha256)
        return convert.token_to_pb(revoked[0])

    @_refusals_as_status
    async def ListServices(
        self, request: pb.ListServicesRequest, context: Any
    ) -> pb.ListServicesResponse:
        world = await self._world()
        services = sorted(world.services.values(), key=lambda s: s.name)
        return pb.ListServicesResponse(services=[convert.service_to_pb(s) for s in services])


def _refusing_unparsable(method: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    async def handle(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, Unparsable):
            log.info("operator.unparsable", type=request.message_type, error=request.error)
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the request is not a valid {request.message_type} ({request.error}): "
                "send a message of the method's request type",
            )
        return await method(request, context)

    return handle


def operator_handler(servicer: OperatorServicer) -> grpc.GenericRpcHandler:
    """The ``xds_server.v1.Operator`` service, answering undecodable requests with
    INVALID_ARGUMENT (use instead of the generated ``add_OperatorServicer_to_server``)."""
    service = pb.DESCRIPTOR.services_by_name["Operator"]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            _refusing_unparsable(getattr(servicer, method.name)),
            request_deserializer=lenient(getattr(pb, method.input_type.name)),
            response_serializer=getattr(pb, method.output_type.name).SerializeToString,
        )
        for method in service.methods
    }
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
