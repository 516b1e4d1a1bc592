"""The CLI's side of the operator API: one channel, the caller's identity, exit codes."""

from __future__ import annotations

import getpass
import itertools
import os
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from xds_server.api.metadata import (
    ACTOR_METADATA_KEY,
    DRY_RUN_METADATA_KEY,
    MAX_REQUEST_ID,
    REPLAYED_METADATA_KEY,
    REQUEST_ID_METADATA_KEY,
    is_request_id,
)
from xds_server.auth.identity import AUTHORIZATION_KEY
from xds_server.auth.roles import rule_for
from xds_server.auth.tls import is_loopback
from xds_server.errors import CliError
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc

Reply = TypeVar("Reply")

DEFAULT_PORT = 18001
DEFAULT_SERVER = f"127.0.0.1:{DEFAULT_PORT}"
CALL_TIMEOUT_SECONDS = 15.0
REACH_TIMEOUT_SECONDS = 5.0

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_NOT_CONFIRMED = 4
EXIT_DENIED = 5
# An --if-revision that no longer holds: someone changed the service; re-read and retry.
EXIT_CONFLICT = 6
EXIT_OUTCOME_UNKNOWN = 7
# Above the server's default limit: state export can be large.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
REQUEST_ID_ENV = "XDSCTL_REQUEST_ID"
# A run's further writes add ".2", ".3": room left within MAX_REQUEST_ID.
LONGEST_RUN_ID = MAX_REQUEST_ID - 8

_UNREACHABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# What a write can end with although the server may have committed it: the
# connection broke, the deadline passed, or the server failed after the commit.
_OUTCOME_UNKNOWN = _UNREACHABLE | {
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
}
_DENIED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}
_OPERATOR = "/xds_server.v1.Operator/"


def actor() -> str:
    """Who is asking, as the audit log records it: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    # gRPC metadata is printable ASCII: a name in another script goes as escapes.
    who = f"{user}@{socket.gethostname()}".encode("ascii", "backslashreplace").decode()
    return "".join(ch if ch.isprintable() else "?" for ch in who)


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


def request_id() -> str:
    """This run's request id: ``XDSCTL_REQUEST_ID`` (to repeat an earlier run's), else new."""
    given = os.environ.get(REQUEST_ID_ENV)
    if given is None:
        return uuid.uuid4().hex
    if not is_request_id(given, LONGEST_RUN_ID):
        raise CliError(
            f"{REQUEST_ID_ENV} is not a request id: use up to {LONGEST_RUN_ID} of "
            "A-Z a-z 0-9 . _ : - "
            "(or unset it, and a fresh one is made)",
            EXIT_USAGE,
        )
    return given


class OperatorClient:
    """Calls the operator API and turns gRPC failures into ``CliError``.

    Every write carries this run's request id, so repeating a run whose outcome
    was unknown, with ``XDSCTL_REQUEST_ID`` set to that id, applies it at most
    once. A write is only sent once the server has answered a health check:
    what fails before that never reached it (exit 3), what fails after may
    have been committed (exit 7).
    """

    def __init__(
        self, server: str, credentials: Credentials | None = None, dry_run: bool = False
    ) -> None:
        credentials = credentials or Credentials()
        # --dry-run: every write is checked and answered by the server, never applied.
        self.dry_run = dry_run
        self._dry_run_checked = False
        self._server = server
        self._channel = credentials.channel(server)
        self.stub = operator_pb2_grpc.OperatorStub(self._channel)
        self.request_id = request_id()
        # The first write takes the id itself, any further one of the run ID.2, ID.3...
        self._writes = itertools.count(1)
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
        self._reached = False

    def call(self, method: str, request: object, timeout: float = CALL_TIMEOUT_SECONDS) -> Reply:
        """Call operator method ``method`` (``"SetTraffic"``); a failure is a ``CliError``."""
        stub_method: Callable[..., Reply] = getattr(self.stub, method)
        writes = rule_for(_OPERATOR + method).writes
        metadata = self._metadata
        call_id: str | None = None
        if writes and self.dry_run:
            self._check_dry_run()
            metadata = (*metadata, (DRY_RUN_METADATA_KEY, "1"))
        elif writes:
            self._reach()
            number = next(self._writes)
            call_id = self.request_id if number == 1 else f"{self.request_id}.{number}"
            metadata = (*metadata, (REQUEST_ID_METADATA_KEY, call_id))
        try:
            reply, call = stub_method.with_call(request, timeout=timeout, metadata=metadata)  # type: ignore[attr-defined]
        except grpc.RpcError as error:
            raise self._cli_error(error, call_id) from error
        except KeyboardInterrupt:
            if call_id is not None:
                print(
                    "xdsctl: interrupted after the request was sent: it may or may not have "
                    f"been applied; repeat the command with {REQUEST_ID_ENV}={self.request_id} "
                    "to apply it at most once",
                    file=sys.stderr,
                )
            raise
        trailing = dict(call.trailing_metadata() or ())
        if writes and self.dry_run and DRY_RUN_METADATA_KEY not in trailing:
            raise CliError(
                f"the xds_server at {self._server} did not take {method} as a dry run (an "
                "older version?): it may have been applied; check with `xdsctl traffic "
                "history` and `deployments list`",
                EXIT_OUTCOME_UNKNOWN,
            )
        replayed = trailing.get(REPLAYED_METADATA_KEY)
        if replayed is not None:
            print(
                f"xdsctl: note: request {replayed} was applied by an earlier run; "
                "this is that run's result, nothing was changed now",
                file=sys.stderr,
            )
        return reply

    def _check_dry_run(self) -> None:
        """Before the first dry-run write: a server older than --dry-run would apply it
        (it ignores the metadata), and such a server has no GetVersion either."""
        if self._dry_run_checked:
            return
        try:
            self.stub.GetVersion(
                pb.GetVersionRequest(), timeout=REACH_TIMEOUT_SECONDS, metadata=self._metadata
            )
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.UNIMPLEMENTED:  # type: ignore[attr-defined]
                raise CliError(
                    f"the xds_server at {self._server} is older than --dry-run: nothing was "
                    "sent (it would have applied the change); upgrade it, or drop --dry-run",
                    EXIT_REFUSED,
                ) from error
            raise self._cli_error(error, None) from error
        self._dry_run_checked = True

    def watch(self, request: object) -> Iterator[Any]:
        """The events of a ``Watch`` call until the caller stops reading (or Ctrl-C)."""
        try:
            yield from self.stub.Watch(request, metadata=self._metadata)
        except grpc.RpcError as error:
            raise self._cli_error(error, None) from error

    def _reach(self) -> None:
        """Make sure the server answers before a write is sent (health needs no token)."""
        if self._reached:
            return
        health = health_pb2_grpc.HealthStub(self._channel)
        try:
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=REACH_TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            raise self._cli_error(error, None) from error
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise CliError(
                f"the xds_server at {self._server} is not serving (starting or stopping): "
                "nothing was sent; try again in a moment",
                EXIT_UNREACHABLE,
            )
        self._reached = True

    def _cli_error(self, error: grpc.RpcError, write_id: str | None) -> CliError:
        code = error.code()  # type: ignore[attr-defined]
        details = error.details()  # type: ignore[attr-defined]
        if write_id is not None and code in _OUTCOME_UNKNOWN:
            return CliError(
                f"the call to the xds_server at {self._server} failed after the request was "
                f"sent ({code.name}: {details}): it may or may not have been applied. Check "
                "with `xdsctl traffic history`, `traffic get` or `deployments list`, or repeat "
                f"the same command with {REQUEST_ID_ENV}={self.request_id}: a request id is "
                "applied at most once, and a repeat is answered with the first result",
                EXIT_OUTCOME_UNKNOWN,
            )
        if code in _UNREACHABLE:
            return CliError(
                f"cannot reach the xds_server at {self._server} ({details}): start it with "
                "`xdsctl serve`, or point --server or XDSCTL_SERVER at it",
                EXIT_UNREACHABLE,
            )
        if code in _DENIED:
            return CliError(details or code.name.lower(), EXIT_DENIED)
        if code is grpc.StatusCode.ABORTED:
            return CliError(details or code.name.lower(), EXIT_CONFLICT)
        return CliError(details or code.name.lower(), EXIT_REFUSED)

    def close(self) -> None:
        self._channel.close()
