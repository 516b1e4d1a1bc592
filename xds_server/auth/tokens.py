"""API tokens: 256 random bits, kept only as their SHA-256.

SHA-256 rather than a password hash (bcrypt, scrypt): a token is 256 random
bits, not a guessable password, so a slow hash adds no protection and would
cost every request. The ``xdst_`` prefix lets secret scanners recognise a
leaked token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from xds_server.auth.roles import Role, parse_role
from xds_server.errors import InvalidRequest, NotFound, PreconditionFailed, XdsServerError
from xds_server.model.names import validate_dns_label

TOKEN_PREFIX = "xdst_"
TOKEN_BYTES = 32


@dataclass(frozen=True)
class TokenRecord:
    """What the store keeps of a token: never the token itself."""

    name: str
    role: Role
    sha256: str
    created_at: str
    created_by: str


def new_token() -> str:
    """A fresh secret: the prefix and 256 random bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What the store keeps and every call is checked against."""
    return hashlib.sha256(token.encode()).hexdigest()


def validate_token_name(name: str) -> str:
    """Token names follow the DNS-label rule, like service names: ``ci-bot``. A token
    pasted where its name belongs is refused without repeating it (errors are logged)."""
    if name.startswith(TOKEN_PREFIX):
        raise InvalidRequest(
            "that is a token, not a token's name: give the name `xdsctl tokens list` shows "
            "(and if the token leaked, revoke it by that name)"
        )
    return validate_dns_label("token name", name)


def with_token(tokens: tuple[TokenRecord, ...], record: TokenRecord) -> tuple[TokenRecord, ...]:
    """The token set with ``record`` added; a name is used once."""
    if any(t.name == record.name for t in tokens):
        raise PreconditionFailed(
            f"a token named {record.name} exists: revoke it first "
            f"(`xdsctl tokens revoke {record.name}`) or pick another name"
        )
    return (*tokens, record)


def without_token(tokens: tuple[TokenRecord, ...], name: str) -> tuple[TokenRecord, ...]:
    """The token set without ``name``. The last admin token cannot go: nobody could manage
    tokens any more, and the server, having had tokens, never opens again."""
    validate_token_name(name)
    if not any(t.name == name for t in tokens):
        known = ", ".join(t.name for t in tokens) or "none"
        raise NotFound(f"no token named {name!r} (tokens: {known}): see `xdsctl tokens list`")
    rest = tuple(t for t in tokens if t.name != name)
    check_admin_remains(rest, f"{name} is the last admin token")
    return rest


def check_admin_remains(
    tokens: tuple[TokenRecord, ...],
    what: str,
    refusal: type[XdsServerError] = PreconditionFailed,
) -> None:
    """Refuse (with ``refusal``) a token set with no admin in it: ``what`` says how it came
    about."""
    if not any(t.role is Role.ADMIN for t in tokens):
        raise refusal(
            f"{what}: there must always be one, or nobody could manage tokens: "
            "create another admin token first (`xdsctl tokens create --role admin`)"
        )


def token_from_document(item: dict[str, Any]) -> TokenRecord:
    """A token record from an exported state document, validated."""
    digest = str(item["sha256"])
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"token {item.get('name')!r}: sha256 must be 64 lowercase hex digits")
    return TokenRecord(
        name=validate_token_name(str(item["name"])),
        role=parse_role(str(item["role"])),
        sha256=digest,
        created_at=str(item["created_at"]),
        created_by=str(item["created_by"]),
    )


def token_to_document(record: TokenRecord) -> dict[str, str]:
    """A token record for an exported state document: its hash, never the token."""
    return {
        "name": record.name,
        "role": record.role.label,
        "sha256": record.sha256,
        "created_at": record.created_at,
        "created_by": record.created_by,
    }
