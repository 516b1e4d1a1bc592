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
from xds_server.model.names import parse_endpoint
from xds_server.redaction import one_line

EXIT_USAGE = 2
# Far above any real count, and exact in a double and in protobuf's int64.
MAX_COUNT = 2**53
MAX_DURATION_SECONDS = 3600.0

_WHOLE = re.compile(r"[0-9]+")
# int() of thousands of digits is slow (and refused past 4300); far above any bound.
_MAX_DIGITS = 17
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")
_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)(ms|s|m)?")


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr, with secrets redacted."""

    def error(self, message: str) -> NoReturn:
        print(
            f"{self.prog}: error: {one_line(message)} (see `{self.prog} --help`)", file=sys.stderr
        )
        raise SystemExit(EXIT_USAGE)


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


def parse_duration(text: str) -> float:
    """``30s``, ``500ms``, ``2m`` or plain seconds, above 0 and at most 1h."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{_shown(text)} is not a duration: write e.g. 30s, 500ms or 2m"
        )
    value, unit = float(match.group(1)), match.group(2) or "s"
    seconds = value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]
    if not 0 < seconds <= MAX_DURATION_SECONDS:
        raise argparse.ArgumentTypeError(f"{text!r} must be above 0 and at most 1h")
    return seconds


def address(text: str) -> str:
    """A flag type: ``HOST:PORT`` (IPv4, ``[IPv6]`` or a DNS name), kept as given."""
    try:
        parse_endpoint(text)
    except InvalidRequest as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text
