"""The CLI's side of the operator API: one channel, the caller's identity, exit codes."""

from __future__ import annotations

import getpass
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import grpc

from xds_server.api.metadata import ACTOR_METADATA_KEY
from xds_server.auth.identity import AUTHORIZATION_KEY
from xds_server.auth.tls import is_loopback
from xds_server.v1 import operator_pb2_grpc

Reply = TypeVar("Reply")

DEFAULT_SERVER = "127.0.0.1:18001"
CALL_TIMEOUT_SECONDS = 15.0

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_CONFIRMED = 4
EXIT_DENIED = 5
# Above the server's default limit: state export can be large.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
_DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


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


@dataclass(frozen=True)
class Credentials:
    """How the CLI proves who it is: a token and/or TLS (with a client certificate)."""

    token: str | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    @property
    def tls(self) -> bool:
        return any(path is not None for path in (self.ca, self.cert, self.key))

    def channel(self, server: str) -> grpc.Channel:
        """A channel to ``server``: TLS when any TLS file is given, else plaintext."""
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        if not self.tls:
            return grpc.insecure_channel(server, options=options)
        if (self.cert is None) != (self.key is None):
            raise CliError("give --cert and --key together (or neither)", EXIT_USAGE)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "--ca"),
            private_key=_read(self.key, "--key"),
            certificate_chain=_read(self.cert, "--cert"),
        )
        return grpc.secure_channel(server, credentials, options=options)


def _read(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {flag} {path}: {error.strerror}", EXIT_USAGE) from error


class OperatorClient:
    """Calls the operator API and turns gRPC failures into ``CliError``."""

    def __init__(self, server: str, credentials: Credentials | None = None) -> None:
        credentials = credentials or Credentials()
        self._server = server
        self._channel = credentials.channel(server)
        self.stub = operator_pb2_grpc.OperatorStub(self._channel)
        metadata = [(ACTOR_METADATA_KEY, actor())]
        if credentials.token:
            metadata.append((AUTHORIZATION_KEY, f"Bearer {credentials.token}"))
            host = server.rpartition(":")[0] or server
            if not credentials.tls and not is_loopback(host):
                print(
                    f"xdsctl: warning: sending the token to {server} unencrypted: "
                    "give --ca (XDSCTL_CA) to use TLS",
                    file=sys.stderr,
                )
        self._metadata = tuple(metadata)

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
        if code in _DENIED:
            return CliError(details or code.name.lower(), EXIT_DENIED)
        return CliError(details or code.name.lower(), EXIT_REFUSED)

    def close(self) -> None:
        self._channel.close()
