"""Secrets out of every text a person or a log sees: API tokens and URL passwords.

The server never prints a secret on purpose; these cover what arrives by
mistake (a token pasted as a service name, a database driver's message
quoting its connection string) in logs and in the errors the CLI prints.
"""

from __future__ import annotations

import re

from xds_server.auth.tokens import TOKEN_PREFIX

_TOKEN_SHAPE = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{8,}")
# user:password@ after a scheme, up to the last @ of the word (a password may hold
# any character, an unencoded @ too); also in malformed URLs, where parsers give up.
_URL_PASSWORD = re.compile(r"(?<=://)([^/?#@:\s]*):\S*@")
# libpq's other ways: password=... as a URL parameter or a key=value setting.
_PASSWORD_SETTING = re.compile(r"(?i)\b(password\s*=\s*)('[^']*'|[^&\s]*)")


def redact_url_passwords(text: str) -> str:
    """``text`` without the password of any URL or connection string in it."""
    return _PASSWORD_SETTING.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))


def redact(text: str) -> str:
    """``text`` with tokens and URL passwords replaced."""
    if TOKEN_PREFIX in text:
        text = _TOKEN_SHAPE.sub(TOKEN_PREFIX + "<redacted>", text)
    return redact_url_passwords(text)


# Control characters (a pasted newline, a carriage return, NEL) and the line and
# paragraph separators would break one line in two.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(32), *range(127, 160))}
_CONTROLS |= {0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(text: str) -> str:
    """``text`` redacted and on one line, for an error printed to a terminal."""
    return redact(text).translate(_CONTROLS)
