"""The latest committed world a process knows, and what each recent change touched.

A store keeps one of these so that a change, a read or the follower never has
to load the whole world again: a commit made here moves it forward with the
world it wrote; a commit made by another replica is caught up from the change
log by reloading only the services it touched (``SqlStore._current``). The
follower asks which services changed since the world it last published and
translates only those.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from xds_server.model.state import World

# Recent changes whose touched services are remembered: far more than a
# follower ever falls behind between two notices.
RECENT_CHANGES = 4096


@dataclass(frozen=True)
class WorldUpdate:
    """The world at ``sequence``, and what changed since the sequence asked about:
    ``services`` touched (None: anything may have), and whether tokens may have."""

    world: World
    sequence: int
    services: frozenset[str] | None
    tokens: bool


@dataclass(frozen=True)
class _Step:
    """Changes ``first`` to ``last`` (sequences), and what they touched together."""

    first: int
    last: int
    services: frozenset[str] | None  # None: the whole state may have changed
    tokens: bool


class CommittedWorld:
    """Thread-safe: store calls run on worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._world: World | None = None
        self._sequence = -1
        self._steps: deque[_Step] = deque(maxlen=RECENT_CHANGES)

    def get(self) -> tuple[World | None, int]:
        with self._lock:
            return self._world, self._sequence

    def advance(
        self,
        world: World,
        sequence: int,
        services: frozenset[str] | None,
        tokens: bool,
        since: int | None = None,
    ) -> None:
        """Record ``world`` as committed at ``sequence``, reached from ``since`` (default:
        the sequence before) by changes that touched ``services`` and maybe ``tokens``.
        Only ever forward: a slower thread's older news is dropped; a gap from the
        world held so far makes the step cover everything."""
        with self._lock:
            if sequence <= self._sequence:
                return
            first = sequence if since is None else since + 1
            if first != self._sequence + 1:
                first, services, tokens = self._sequence + 1, None, True
            self._steps.append(_Step(first, sequence, services, tokens))
            self._world, self._sequence = world, sequence

    def since(self, sequence: int) -> WorldUpdate | None:
        """The current world and what changed after ``sequence``; None before any world."""
        with self._lock:
            if self._world is None:
                return None
            if sequence >= self._sequence:
                return WorldUpdate(self._world, self._sequence, frozenset(), False)
            steps = []
            for step in reversed(self._steps):  # newest first: a follower is rarely far behind
                if step.last <= sequence:
                    break
                steps.append(step)
            steps.reverse()
            if not steps or steps[0].first > sequence + 1:
                return WorldUpdate(self._world, self._sequence, None, True)
            if any(s.services is None for s in steps):
                return WorldUpdate(self._world, self._sequence, None, True)
            touched = frozenset().union(*(s.services or () for s in steps))
            tokens = any(s.tokens for s in steps)
            return WorldUpdate(self._world, self._sequence, touched, tokens)
