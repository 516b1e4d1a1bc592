"""The operator gRPC service: requests in, model operations through the store, replies out.

No business rule lives here: each method converts its request, runs one
operation of ``xds_server.model.operations`` in a store transaction and
converts the result. Model errors become gRPC status codes at this boundary.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import Message

from xds_server.api import convert
from xds_server.api.describe import (
    describe_apply,
    describe_promote,
    describe_rollback,
    describe_set_traffic,
)
from xds_server.api.fleet import FleetView
from xds_server.api.grpc_status import status_of
from xds_server.api.metadata import (
    ACTOR_METADATA_KEY,
    REPLAYED_METADATA_KEY,
    REQUEST_ID_METADATA_KEY,
    is_request_id,
)
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
    PreconditionFailed,
    StoreUnavailable,
    XdsServerError,
)
from xds_server.follower import StateFollower
from xds_server.ids import DeploymentIdGenerator
from xds_server.lenient import Unparsable, lenient
from xds_server.metrics import Metrics
from xds_server.model import operations as ops
from xds_server.model.names import validate_dns_label
from xds_server.model.operations import HistoryReader
from xds_server.model.state import DEFAULT_SERVICE, Picture, World
from xds_server.redaction import redact
from xds_server.store.base import (
    ChangeFunction,
    Replayed,
    Store,
    TokenEdit,
    WriteRequest,
)
from xds_server.store.state_document import state_from_json, state_to_json
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc

log = structlog.get_logger(__name__)

T = TypeVar("T")
Result = TypeVar("Result")
ReplyT = TypeVar("ReplyT", bound=Message)
MAX_WAIT_SECONDS = 3600.0
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
            message = redact(str(error))
            log.info("operator.refused", method=method.__name__, code=code.name, error=message)
            self._count(method.__name__, code.name.lower())
            await context.abort(code, message)
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


# Each write's reply type, by its request type: what a replayed reply decodes as.
_REPLY_TYPES: dict[str, type[Message]] = {
    method.input_type.full_name: getattr(pb, method.output_type.name)
    for method in pb.DESCRIPTOR.services_by_name["Operator"].methods
}


def _retry_key(
    context: grpc.aio.ServicerContext, request: Message, reply: Callable[[Any], Message]
) -> WriteRequest | None:
    """The call's request id (``x-request-id``) with what it asks; None without one."""
    request_id = dict(context.invocation_metadata() or ()).get(REQUEST_ID_METADATA_KEY)
    if request_id is None:
        return None
    if not is_request_id(request_id):
        raise InvalidRequest(
            f"the request id {str(request_id)[:40]!r} is not valid: use up to 128 of "
            "A-Z a-z 0-9 . _ : - (or leave XDSCTL_REQUEST_ID unset: the CLI makes one)"
        )
    identity = current_identity()
    asked = hashlib.sha256()
    for part in (request.DESCRIPTOR.full_name, identity.name if identity else ""):
        asked.update(part.encode() + b"\0")
    asked.update(request.SerializeToString(deterministic=True))
    return WriteRequest(
        request_id, asked.hexdigest(), lambda result: reply(result).SerializeToString()
    )


class OperatorServicer(operator_pb2_grpc.OperatorServicer):
    """Serves ``xds_server.v1.Operator`` on top of a ``Store``."""

    def __init__(
        self,
        store: Store,
        snapshot_problems: Callable[[World], list[str]],
        on_change: Callable[[], Awaitable[None]],
        fleet: FleetView,
        new_id: Callable[[], str] | None = None,
        metrics: Metrics | None = None,
        follower: StateFollower | None = None,
        forget_token: Callable[[str], None] = lambda _sha256: None,
    ) -> None:
        self._store = store
        # Drops a token this replica revoked from its in-memory book at once.
        self._forget_token = forget_token
        # The replica's published state: reads fall back to it when the
        # database is unavailable.
        self._follower = follower
        # Publishes a committed change (the follower), before the call returns.
        self._on_change = on_change
        # Why a world's snapshot would break Envoy: checked before an import.
        self._snapshot_problems = snapshot_problems
        self._new_id = new_id or DeploymentIdGenerator()
        # Every Envoy this replica can vouch for, for status and --wait.
        self._fleet = fleet
        self._metrics = metrics

    def _count(self, method: str, result: str) -> None:
        if self._metrics is not None:
            self._metrics.on_operator_request(method, result)

    async def _commit(
        self,
        context: grpc.aio.ServicerContext,
        request: Message,
        write: Callable[[WriteRequest | None], Awaitable[Result]],
        reply: Callable[[Result], ReplyT],
        remembered: Callable[[ReplyT], Message] = lambda reply: reply,
        replayed: Callable[[ReplyT], ReplyT] = lambda reply: reply,
    ) -> ReplyT:
        """The one path of every write: commit, then hand the new state on (to the xDS
        snapshot) before replying, so a call that returns is durable and being pushed.

        ``write`` commits (and audits) given the call's request id, and returns what
        the store returned: ``reply`` turns that into the answer, also inside the
        store's transaction, to remember. A repeat of a committed id changes nothing
        and is answered with the ``remembered`` part of the first reply (passed
        through ``replayed``).
        """
        retry = _retry_key(context, request, lambda result: remembered(reply(result)))
        try:
            result = await write(retry)
        except Replayed as replay:
            assert retry is not None  # only a request with an id is replayed
            log.info("operator.replayed", request=request.DESCRIPTOR.name, request_id=retry.id)
            context.set_trailing_metadata(((REPLAYED_METADATA_KEY, retry.id),))
            first = _REPLY_TYPES[request.DESCRIPTOR.full_name].FromString(replay.reply)
            return replayed(first)  # type: ignore[arg-type]
        await self._on_change()
        return reply(result)

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

        def change(world: World, _history: HistoryReader) -> ops.Change[ops.ApplyResult]:
            return ops.apply_deployment(
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

        return await self._commit(
            context,
            request,
            lambda retry: self._revision_change(change, retry, "Apply", ctx),
            lambda change: convert.apply_to_pb(change.result),
        )

    async def _revision_change(
        self,
        change: ChangeFunction[T],
        retry: WriteRequest | None,
        method: str,
        ctx: ops.Context,
    ) -> ops.Change[T]:
        """Commit a change that makes revisions, with one audit record per revision."""
        committed = await self._store.transact(change, _credential(), retry)
        self._audit(committed, method, ctx)
        return committed

    async def _traffic_change(
        self,
        context: grpc.aio.ServicerContext,
        request: Message,
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
        return await self._commit(
            context,
            request,
            lambda retry: self._revision_change(
                lambda world, history: operation(world, history, ctx, service), retry, method, ctx
            ),
            lambda change: pb.TrafficChange(
                traffic=convert.traffic_to_pb(change.result.traffic),
                warnings=change.result.warnings,
            ),
        )

    @_refusals_as_status
    async def SetTraffic(self, request: pb.SetTrafficRequest, context: Any) -> pb.TrafficChange:
        mirrors = convert.mirrors_from_pb(request.mirrors)
        return await self._traffic_change(
            context,
            request,
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
            request,
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
            request,
            "RollbackTraffic",
            describe_rollback(request),
            request.service,
            lambda world, history, ctx, service: ops.rollback(
                world,
                history,
                ctx,
                service=service,
                to_revision=request.to_revision if request.HasField("to_revision") else None,
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
        request: Message,
        subject: str,
        change: ChangeFunction[T],
        view: Callable[[World], Any],
        reply: Callable[[T], ReplyT],
    ) -> ReplyT:
        """Commit a change that has no revision, logging ``view`` of the world before and after."""
        method = request.DESCRIPTOR.name.removesuffix("Request")
        before: list[Any] = []

        def recorded(world: World, history: HistoryReader) -> ops.Change[T]:
            before.append(view(world))
            return change(world, history)

        async def write(retry: WriteRequest | None) -> ops.Change[T]:
            committed = await self._store.transact(recorded, _credential(), retry)
            log.info(
                "operator.change",
                method=method,
                actor=_actor(context),
                subject=subject,
                before=before[-1],
                after=view(committed.world),
            )
            return committed

        return await self._commit(context, request, write, lambda change: reply(change.result))

    @_refusals_as_status
    async def SetEndpoints(self, request: pb.SetEndpointsRequest, context: Any) -> pb.Deployment:
        endpoints = convert.endpoints_from_pb(request.endpoints)
        return await self._audited(
            context,
            request,
            request.id,
            lambda world, _history: ops.set_endpoints(
                world, deployment_id=request.id, endpoints=endpoints
            ),
            lambda world: _endpoints_of(world, request.id),
            convert.deployment_to_pb,
        )

    @_refusals_as_status
    async def DeleteDeployment(
        self, request: pb.DeleteDeploymentRequest, context: Any
    ) -> pb.Deployment:
        return await self._audited(
            context,
            request,
            request.id,
            lambda world, _history: ops.delete_deployment(world, deployment_id=request.id),
            lambda world: _endpoints_of(world, request.id),
            convert.deployment_to_pb,
        )

    @_refusals_as_status
    async def SetServiceDomains(
        self, request: pb.SetServiceDomainsRequest, context: Any
    ) -> pb.SetServiceDomainsResponse:
        return await self._audited(
            context,
            request,
            request.service,
            lambda world, _history: ops.set_domains(
                world, service=request.service, domains=list(request.domains)
            ),
            lambda world: (
                list(world.services[request.service].domains)
                if request.service in world.services
                else None
            ),
            lambda result: pb.SetServiceDomainsResponse(
                service=convert.service_to_pb(result.service), created=result.created
            ),
        )

    @_refusals_as_status
    async def GetStatus(self, request: pb.GetStatusRequest, context: Any) -> pb.GetStatusResponse:
        return pb.GetStatusResponse(
            nodes=await self._fleet.nodes(), store=self._store.health.describe()
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
        return await self._fleet.wait_for_sync(request.timeout_seconds, request.min_envoys)

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
        problems = self._snapshot_problems(dump.world)
        if problems:
            raise InvalidRequest(
                "the state document would give Envoy a config it rejects, so nothing was "
                f"imported: {'; '.join(problems[:10])}"
            )

        async def write(retry: WriteRequest | None) -> None:
            await self._store.import_state(dump, request.replace, _credential(), retry)
            log.info(
                "operator.state_imported",
                actor=_actor(context),
                replace=request.replace,
                services=len(dump.world.services),
                deployments=len(dump.world.deployments),
                history_entries=len(dump.history),
                tokens=len(dump.tokens),
            )

        return await self._commit(
            context,
            request,
            write,
            lambda _none: pb.ImportStateResponse(
                services=len(dump.world.services),
                deployments=len(dump.world.deployments),
                history_entries=len(dump.history),
            ),
        )

    async def _edit_tokens(
        self,
        context: grpc.aio.ServicerContext,
        request: Message,
        command: str,
        subject: str,
        edit: TokenEdit,
        reply: Callable[[tuple[TokenRecord, ...]], ReplyT],
        remembered: Callable[[ReplyT], Message] = lambda reply: reply,
        replayed: Callable[[ReplyT], ReplyT] = lambda reply: reply,
    ) -> ReplyT:
        """Commit a token change, log it (never the secret) and reload every replica's book."""

        async def write(retry: WriteRequest | None) -> tuple[TokenRecord, ...]:
            tokens = await self._store.edit_tokens(edit, _credential(), retry)
            log.info(
                "operator.tokens_changed", actor=_actor(context), command=command, token=subject
            )
            return tokens

        return await self._commit(context, request, write, reply, remembered, replayed)

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

        def replayed(first: pb.CreateTokenResponse) -> pb.CreateTokenResponse:
            raise PreconditionFailed(
                f"this request already created token {first.info.name}, and its secret was "
                "shown once, to that first attempt: if it is lost, revoke the token "
                f"(`xdsctl tokens revoke {first.info.name}`) and create another"
            )

        return await self._edit_tokens(
            context,
            request,
            f"tokens create --name {record.name} --role {record.role.label}",
            record.name,
            lambda tokens: with_token(tokens, record),
            lambda _tokens: pb.CreateTokenResponse(info=convert.token_to_pb(record), token=token),
            # The store keeps hashes only: a repeat is told the token exists, not its secret.
            remembered=lambda reply: pb.CreateTokenResponse(info=reply.info),
            replayed=replayed,
        )

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
            revoked[:] = [t for t in tokens if t.name == request.name]
            return without_token(tokens, request.name)

        info = await self._edit_tokens(
            context,
            request,
            f"tokens revoke {request.name}",
            request.name,
            edit,
            lambda _tokens: convert.token_to_pb(revoked[0]),
        )
        if revoked:
            # Refused here from now on, even if reading the tokens back just failed.
            self._forget_token(revoked[0].sha256)
        return info

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
