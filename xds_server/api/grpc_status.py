"""The gRPC status each refusal answers with (the table in ``xds_server.errors``)."""

from __future__ import annotations

import grpc

from xds_server.errors import (
    Forbidden,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
    RevisionConflict,
    StateError,
    Unauthenticated,
    XdsServerError,
)

_STATUS_OF_ERROR: dict[type[XdsServerError], grpc.StatusCode] = {
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    # Stored rows that do not decode: the state, not the request, is at fault.
    StateError: grpc.StatusCode.FAILED_PRECONDITION,
    RevisionConflict: grpc.StatusCode.ABORTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # The client says "may or may not have been applied" (exit 7) for a write.
    OutcomeUnknown: grpc.StatusCode.UNAVAILABLE,
}


def status_of(error: XdsServerError) -> grpc.StatusCode:
    """The status of the error's class or its nearest mapped ancestor."""
    for kind in type(error).__mro__:
        if kind in _STATUS_OF_ERROR:
            return _STATUS_OF_ERROR[kind]
    return grpc.StatusCode.INTERNAL
