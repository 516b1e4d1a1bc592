"""Deployment ids: 25 lowercase alphanumerics, sortable by creation time.

The shape is cuid's (``c`` + time + counter + fingerprint + random), e.g.
``cm9n46thy000bwe6y784y4j0l``. No maintained package makes time-sortable ids
of this shape, so this small generator does.
"""

from __future__ import annotations

import itertools
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25


def _base36(value: int, width: int) -> str:
    """``value`` in base 36, left-padded with zeros and cut to its last ``width`` digits."""
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 36)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _fingerprint() -> str:
    seed = sum(map(ord, socket.gethostname())) + os.getpid()
    return _base36(seed, 4)


class DeploymentIdGenerator:
    """Makes ids that sort by creation time, also within one millisecond.

    The time part never goes backwards (a clock step back reuses the last
    time), and a counter orders ids made in the same millisecond.
    """

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = itertools.count()
        self._fingerprint = _fingerprint()

    def __call__(self) -> str:
        with self._lock:
            now = max(self._clock_ms(), self._last_ms)
            if now != self._last_ms:
                self._last_ms = now
                self._counter = itertools.count()
            count = next(self._counter)
        random_part = _base36(secrets.randbits(41), 8)
        return "c" + _base36(now, 8) + _base36(count, 4) + self._fingerprint + random_part


def is_deployment_id(value: str) -> bool:
    """Whether ``value`` has the shape of a deployment id."""
    return len(value) == ID_LENGTH and value[0] == "c" and all(ch in _ALPHABET for ch in value)
