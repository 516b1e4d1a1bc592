"""Who is calling: resolved once per call by the API guard, read by the servicer."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xds_server.auth.roles import Role
from xds_server.auth.tokens import TokenRecord

# The authorization metadata key: ``authorization: Bearer TOKEN``.
AUTHORIZATION_KEY = "authorization"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller, or the anonymous caller of a server still open."""

    name: str  # "token:ci-bot", "cert:CN=alice,O=ops" or "anonymous"
    role: Role
    # The caller's token hash: writes check it still exists inside their transaction.
    credential: str | None = None

    @property
    def authenticated(self) -> bool:
        return self.name != ANONYMOUS.name


ANONYMOUS = Identity("anonymous", Role.ADMIN)

_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "xds_server_identity", default=None
)


def current_identity() -> Identity | None:
    """The identity of the call being served (None outside the guard, e.g. in unit tests)."""
    return _current.get()


def set_current_identity(identity: Identity) -> contextvars.Token[Identity | None]:
    return _current.set(identity)


class TokenBook:
    """The tokens this replica knows, by hash; reloaded whenever the store's state moves."""

    def __init__(self) -> None:
        self._by_hash: dict[str, TokenRecord] = {}

    def replace(self, records: Iterable[TokenRecord]) -> None:
        self._by_hash = {record.sha256: record for record in records}

    def find(self, sha256: str) -> TokenRecord | None:
        return self._by_hash.get(sha256)

    @property
    def empty(self) -> bool:
        return not self._by_hash


def bearer_token(metadata: Mapping[str, str | bytes]) -> str | None:
    """The token of an ``authorization: Bearer TOKEN`` header; None when absent."""
    value = metadata.get(AUTHORIZATION_KEY)
    if value is None:
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    scheme, _, token = text.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return ""  # present but malformed: refused, never treated as absent
    return token.strip()
