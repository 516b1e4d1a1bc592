"""What every flag value may be, and how a bad one is refused: one line, exit 2.

Numbers are plain ASCII digits only (Python's ``int()`` also takes other
scripts' digits and ``+``), with bounds a protobuf field can hold; addresses
are ``HOST:PORT``. Each type raises ``argparse.ArgumentTypeError``, which
``OneLineParser`` prints as one line naming the flag and the fix.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from xds_server.errors import InvalidRequest
from xds_server.model.names import did_you_mean, parse_endpoint
from xds_server.redaction import one_line

EXIT_USAGE = 2
# Far above any real count, and exact in a double and in protobuf's int64.
MAX_COUNT = 2**53
MAX_DURATION_SECONDS = 24 * 3600.0

_WHOLE = re.compile(r"[0-9]+")
# int() of thousands of digits is slow (and refused past 4300); far above any bound.
_MAX_DIGITS = 17
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_DURATION_PART = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr, with secrets redacted."""

    def error(self, message: str) -> NoReturn:
        print(
            f"{self.prog}: error: {one_line(message)}{_did_you_mean(message)} "
            f"(see `{self.prog} --help`)",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_USAGE)


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def _did_you_mean(message: str) -> str:
    """For an unknown command or choice, the closest one (Python 3.11's argparse has none)."""
    found = _INVALID_CHOICE.search(message)
    if found is None:
        return ""
    choices = re.findall(r"'([^']*)'", found.group(2))
    hint = did_you_mean(found.group(1), choices)
    return f": {hint.rstrip()}" if hint else ""


def _shown(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:21] + "...")


def whole_number(low: int = 0, high: int = MAX_COUNT) -> Callable[[str], int]:
    """A flag type: an integer from ``low`` to ``high``, in plain digits."""

    def parse(text: str) -> int:
        if not _WHOLE.fullmatch(text):
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} is not a whole number in plain digits (0-9, no sign)"
            )
        if len(text) > _MAX_DIGITS or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{_shown(text)} must be from {low} to {high}")
        return int(text)

    return parse


def positive(kind: type[int] | type[float], high: float = 1e9) -> Callable[[str], float]:
    """A flag type: a number above 0 and at most ``high`` (decimals for ``float``)."""
    pattern = _DECIMAL if kind is float else _WHOLE

    def parse(text: str) -> float:
        if not pattern.fullmatch(text):
            what = "a number" if kind is float else "a whole number"
            raise argparse.ArgumentTypeError(f"{_shown(text)} is not {what} in plain digits")
        value = kind(text) if len(text) <= 2 * _MAX_DIGITS else float("inf")
        if not 0 < value <= high:
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} must be above 0 and at most {high:.0f}"
            )
        return value

    return parse


def duration(high: float = MAX_DURATION_SECONDS, whole: bool = False) -> Callable[[str], float]:
    """A flag type: a duration in one syntax everywhere: ``500ms``, ``2s``, ``1.5m``,
    ``1h30m``, or plain seconds; above 0 (0 too for ``whole``) and at most ``high``.
    ``whole``: in whole seconds (what Envoy's keepalive fields hold)."""

    def parse(text: str) -> float:
        cleaned = text.strip()
        parts = _DURATION_PART.findall(cleaned)
        plain = _DECIMAL.fullmatch(cleaned)
        if not plain and (not parts or "".join(n + u for n, u in parts) != cleaned):
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} is not a duration: write e.g. 500ms, 30s, 2m or 1h30m"
            )
        seconds = float(cleaned) if plain else sum(float(n) * _UNITS[u] for n, u in parts)
        low_ok = seconds >= 0 if whole else seconds > 0
        if not low_ok or seconds > high:
            above = "0 or more" if whole else "above 0"
            raise argparse.ArgumentTypeError(
                f"{_shown(text)} must be {above} and at most {_duration_text(high)}"
            )
        if whole and seconds != int(seconds):
            raise argparse.ArgumentTypeError(f"{_shown(text)} must be whole seconds, e.g. 5s")
        return seconds

    return parse


def _duration_text(seconds: float) -> str:
    """``1h``, ``5m``, ``30s``: a bound as the operator would write it."""
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


# The one duration flag type most flags take (a per-flag bound is the server's).
parse_duration = duration()


def address(text: str) -> str:
    """A flag type: ``HOST:PORT`` (IPv4, ``[IPv6]`` or a DNS name), kept as given."""
    try:
        parse_endpoint(text)
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text
