"""Errors that reach a user, each naming the problem and the fix.

The hierarchy, with the gRPC status the operator API answers for each::

    XdsServerError
    ├── InvalidRequest       the request breaks a rule           INVALID_ARGUMENT
    ├── NotFound             unknown service, deployment, ...    NOT_FOUND
    ├── PreconditionFailed   the current state does not allow it FAILED_PRECONDITION
    │   └── StoreUnavailable the database cannot be reached      FAILED_PRECONDITION
    ├── RevisionConflict     --if-revision did not match         ABORTED
    └── StateError           the state file cannot be used       (server start-up)

A refused request never changes state: every check runs before anything is
written, and a store transaction that raises is rolled back.
"""

from __future__ import annotations


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


class StateError(XdsServerError):
    """The state file is unusable: written by a newer version, or not ours."""
