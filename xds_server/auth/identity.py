"""Who is calling: resolved once per call by the API guard, read by the servicer."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xds_server.auth.roles import Role
from xds_server.auth.tokens import TokenRecord

# The standard HTTP header, so proxies and gRPC tooling recognise (and redact) it.
AUTHORIZATION_KEY = "authorization"


@dataclass(frozen=True)
class Identity:
    """An authenticated caller, or the anonymous caller of a server still open."""

    name: str  # "token:ci-bot", "cert:CN=alice,O=ops" or "anonymous"
    role: Role
    # What a write re-checks inside its transaction: the token's hash (it must still
    # exist), NO_TOKENS_YET (still no token at all), or None (a certificate: nothing).
    credential: str | None = None
    authenticated: bool = True


# The credential of the anonymous caller of a server that had no token yet.
NO_TOKENS_YET = ""
ANONYMOUS = Identity("anonymous", Role.ADMIN, credential=NO_TOKENS_YET, authenticated=False)

_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "xds_server_identity", default=None
)


def current_identity() -> Identity | None:
    """The identity of the call being served (None outside the guard, e.g. in unit tests)."""
    return _current.get()


def set_current_identity(identity: Identity) -> None:
    """Hand the identity of the call being served to the servicer (one task per call)."""
    _current.set(identity)


class TokenBook:
    """The tokens this replica knows, by hash; reloaded whenever the store's state moves."""

    def __init__(self) -> None:
        self._by_hash: dict[str, TokenRecord] = {}

    def replace(self, records: Iterable[TokenRecord]) -> None:
        """Take the store's current token set."""
        self._by_hash = {record.sha256: record for record in records}

    def forget(self, sha256: str) -> None:
        """Drop a token this replica just revoked, even if reading the set back failed."""
        self._by_hash.pop(sha256, None)

    def find(self, sha256: str) -> TokenRecord | None:
        """The token with this hash, if it exists."""
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
