"""What a client command's handler gives back to ``main``, and the handler's type."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from xds_server.cli.client import OperatorClient


@dataclass(frozen=True)
class Result:
    """A handler's outcome: what goes to stdout, and what ``main`` does after it.

    ``revision`` is the revision a write committed, when the server says: ``--wait``
    names it if the Envoys do not confirm the change. ``warnings`` are the server's
    notes (an in-place release, an unrouted service), printed to stderr before ``text``.
    """

    text: str
    revision: int | None = None
    warnings: Sequence[str] = ()
    # What stderr says besides the warnings ("unchanged (revision 4)").
    notes: Sequence[str] = ()


Handler = Callable[[argparse.Namespace, OperatorClient], Result]
