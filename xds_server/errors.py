"""Errors that reach a user, each naming the problem and the fix.

The hierarchy, with the gRPC status the operator API answers for each::

    XdsServerError
    ├── InvalidRequest       the request breaks a rule           INVALID_ARGUMENT
    ├── NotFound             unknown service, deployment, ...    NOT_FOUND
    ├── PreconditionFailed   the current state does not allow it FAILED_PRECONDITION
    │   └── StoreUnavailable the database cannot be reached      FAILED_PRECONDITION
    ├── RevisionConflict     --if-revision did not match         ABORTED
    ├── Unauthenticated      no credential, or an unknown one    UNAUTHENTICATED
    ├── Forbidden            the caller's role is too low        PERMISSION_DENIED
    ├── LimitExceeded        size, calls in flight, write rate   RESOURCE_EXHAUSTED
    ├── OutcomeUnknown       the store failed during a commit    UNAVAILABLE
    ├── StateError           the state file cannot be used       (server start-up)
    │   └── UnreadableRow    a stored row does not decode        (server start-up)
    ├── ServeRefused         unsafe or unreadable serve settings (server start-up)
    ├── InconsistentSnapshot a snapshot that would break Envoy   (refused, never sent)
    ├── ProtocolError        an xDS client broke the protocol    (its stream's status)
    ├── Replayed             a request id committed before       (answered with its reply)
    ├── DemoError            the demo cannot start               (xdsctl demo)
    └── CliError             ends an xdsctl command              (its exit code)

A refused request never changes state: every check runs before anything is
written, and a store transaction that raises is rolled back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the pure layers import this module: no gRPC at run time
    import grpc


class XdsServerError(Exception):
    """Root of every error this package raises on purpose."""


class InvalidRequest(XdsServerError):
    """The request breaks a rule: a bad name, weight, endpoint or flag combination."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


class NotFound(XdsServerError):
    """An unknown service, deployment or revision."""


class PreconditionFailed(XdsServerError):
    """Well formed, but the current state does not allow it."""


class StoreUnavailable(PreconditionFailed):
    """The database did not answer in time; nothing was written."""


class RevisionConflict(XdsServerError):
    """The service moved on since the revision the caller named."""


class Unauthenticated(XdsServerError):
    """No token or client certificate, or one this server does not know."""


class Forbidden(XdsServerError):
    """The caller is known, but its role does not allow the call."""


class LimitExceeded(XdsServerError):
    """A limit that protects the server: calls in flight, write rate."""


class OutcomeUnknown(XdsServerError):
    """A write whose commit may or may not have happened (the database connection failed
    during it): the client must check, or repeat it with the same request id."""


class StateError(XdsServerError):
    """The state file is unusable: written by a newer version, or not ours."""


class ServeRefused(XdsServerError):
    """``xdsctl serve`` will not start with these settings (unsafe, or files unreadable)."""


class UnreadableRow(StateError):
    """A stored row that does not decode into model values (edited by hand, or by a
    broken tool)."""


class InconsistentSnapshot(XdsServerError):
    """A snapshot that would make Envoy fail; it is refused, the current one stays."""


class ProtocolError(XdsServerError):
    """An xDS client broke the protocol; its stream ends with this status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Replayed(XdsServerError):
    """A write whose request id was already committed: here is its first reply.

    Raised inside the write transaction, so the retry rolls back and changes
    nothing; the operator API answers with ``reply``. Not a refusal: the commit path
    (``api/commit.py``) catches it before any refusal handling sees it.
    """

    def __init__(self, reply: bytes) -> None:
        super().__init__("request already committed")
        self.reply = reply


class DemoError(XdsServerError):
    """The demo could not start; the message says what to install or free."""


class CliError(XdsServerError):
    """Ends an ``xdsctl`` command with ``exit_code`` after printing the message to stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
