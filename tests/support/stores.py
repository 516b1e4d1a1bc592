"""Opening the same store again, on either engine: for tests that run on both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from xds_server.store.base import Store
from xds_server.store.postgres import PostgresStore
from xds_server.store.sqlite import SqliteStore

Opener = Callable[[], Awaitable[Store]]


def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """For a fixture parametrised ``sqlite``/``postgresql``: opens the same store (a file,
    or a fresh database) each time it is called."""
    if request.param == "sqlite":
        return lambda: SqliteStore.open(tmp_path / "state.db")
    url = request.getfixturevalue("postgres").database()
    return lambda: PostgresStore.open(url)
