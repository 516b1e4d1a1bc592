"""The operator service as gRPC serves it: each servicer method behind one boundary.

An undecodable request is answered INVALID_ARGUMENT; a request the model
refuses gets its status (``xds_server.api.grpc_status``) with the model's
message, redacted; every answered call is counted by method and result.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import structlog
from google.protobuf.message import Message

from xds_server.api.grpc_status import status_of
from xds_server.api.servicer import OperatorServicer
from xds_server.errors import XdsServerError
from xds_server.lenient import Unparsable, lenient
from xds_server.metrics import Metrics
from xds_server.redaction import redact
from xds_server.v1 import operator_pb2 as pb

log = structlog.get_logger(__name__)

Method: TypeAlias = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Message]]


def _served(name: str, method: Method, metrics: Metrics) -> Method:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        await _unparsable(request, context)
        try:
            reply: Message = await method(request, context)
        except XdsServerError as error:
            await context.abort(*_refused(name, error, metrics))
            raise  # abort() raises; this line only satisfies type checkers
        metrics.on_operator_request(name, "ok")
        return reply

    return handle


StreamMethod: TypeAlias = Callable[
    [Any, "grpc.aio.ServicerContext[Any, Any]"], AsyncIterator[Message]
]


def _refused(name: str, error: XdsServerError, metrics: Metrics) -> tuple[grpc.StatusCode, str]:
    code = status_of(error)
    message = redact(str(error))
    log.info("operator.refused", method=name, code=code.name, error=message)
    metrics.on_operator_request(name, code.name.lower())
    return code, message


async def _unparsable(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if isinstance(request, Unparsable):
        log.info("operator.unparsable", type=request.message_type, error=request.error)
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not a valid {request.message_type} ({request.error}): "
            "send a message of the method's request type",
        )


def _served_stream(name: str, method: StreamMethod, metrics: Metrics) -> StreamMethod:
    async def handle(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        await _unparsable(request, context)
        try:
            async for reply in method(request, context):
                yield reply
        except XdsServerError as error:
            await context.abort(*_refused(name, error, metrics))
        metrics.on_operator_request(name, "ok")

    return handle


def operator_handler(servicer: OperatorServicer, metrics: Metrics) -> grpc.GenericRpcHandler:
    """The ``xds_server.v1.Operator`` service (use instead of the generated
    ``add_OperatorServicer_to_server``, which has none of the above)."""
    service = pb.DESCRIPTOR.services_by_name["Operator"]
    handlers = {}
    for method in service.methods:
        behaviour = getattr(servicer, method.name)
        options: dict[str, Any] = {
            "request_deserializer": lenient(getattr(pb, method.input_type.name)),
            "response_serializer": getattr(pb, method.output_type.name).SerializeToString,
        }
        if method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _served_stream(method.name, behaviour, metrics), **options
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _served(method.name, behaviour, metrics), **options
            )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)
