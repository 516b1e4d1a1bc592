"""The CLI's side of the operator API: one channel, the caller's identity, exit codes."""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable
from typing import TypeVar

import grpc

from xds_server.api.metadata import ACTOR_METADATA_KEY
from xds_server.v1 import operator_pb2_grpc

Reply = TypeVar("Reply")

DEFAULT_SERVER = "127.0.0.1:18001"
CALL_TIMEOUT_SECONDS = 15.0

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_CONFIRMED = 4

_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class CliError(Exception):
    """Ends the command with ``exit_code`` after printing the message to stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def actor() -> str:
    """Who is asking, as the audit log records it: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class OperatorClient:
    """Calls the operator API and turns gRPC failures into ``CliError``."""

    def __init__(self, server: str) -> None:
        self._server = server
        self._channel = grpc.insecure_channel(server)
        self.stub = operator_pb2_grpc.OperatorStub(self._channel)
        self._metadata = ((ACTOR_METADATA_KEY, actor()),)

    def call(
        self, method: Callable[..., Reply], request: object, timeout: float = CALL_TIMEOUT_SECONDS
    ) -> Reply:
        try:
            return method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as error:
            raise self._cli_error(error) from error

    def _cli_error(self, error: grpc.RpcError) -> CliError:
        code = error.code()  # type: ignore[attr-defined]
        details = error.details()  # type: ignore[attr-defined]
        if code in _UNREACHABLE:
            return CliError(
                f"cannot reach the xds_server at {self._server} ({details}): start it with "
                "`xdsctl serve`, or point --server or XDSCTL_SERVER at it",
                EXIT_UNREACHABLE,
            )
        return CliError(details or code.name.lower(), EXIT_REFUSED)

    def close(self) -> None:
        self._channel.close()
