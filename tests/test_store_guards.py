"""The store's own guards, unit by unit: its health (what clears an outage), the state
file's single owner, and noticing the file lost under a running server."""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path

import pytest

from xds_server.errors import StateError
from xds_server.store.base import StoreError, StoreHealth
from xds_server.store.state_file import (
    StateFileLock,
    StateFileWatch,
    check_state_directory,
    check_state_file,
)


def _health() -> tuple[StoreHealth, list[object]]:
    health = StoreHealth()
    seen: list[object] = []
    health.on_change = seen.append
    health.on_error = seen.append
    return health, seen


def test_a_full_disk_clears_only_with_a_write() -> None:
    """Reads still work on a full disk; only a write that succeeds proves it has room."""
    health, seen = _health()
    health.failed(StoreError.DISK_FULL, "disk full at /x", during_write=True)
    assert seen == [StoreError.DISK_FULL, False]
    assert health.describe().startswith("unavailable since ") and "disk full" in health.describe()
    health.answered(write=False)
    assert health.describe() != "available"
    health.answered(write=True)
    assert health.describe() == "available" and seen[-1] is True


def test_an_unreachable_database_clears_with_any_answer() -> None:
    health, seen = _health()
    health.failed(StoreError.UNREACHABLE, "no connection", during_write=False)
    health.failed(StoreError.UNREACHABLE, "no connection", during_write=True)
    assert seen == [StoreError.UNREACHABLE, False, StoreError.UNREACHABLE]  # one change
    health.answered(write=False)
    assert health.describe() == "available"


def test_a_lost_file_never_clears() -> None:
    health, _seen = _health()
    health.failed(StoreError.FILE_LOST, "state.db was deleted", during_write=False)
    health.failed(StoreError.DISK_FULL, "disk full", during_write=True)
    health.answered(write=True)
    assert health.lost_for_good and "was deleted" in health.describe()


def test_one_owner_per_file(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    lock = StateFileLock(state)
    with pytest.raises(StateError, match=rf"in use by another xdsctl serve \(PID {os.getpid()},"):
        StateFileLock(state)
    lock.release()
    StateFileLock(state).release()  # free again once released


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state.db"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    connection.close()
    StateFileLock(path).release()  # the lock file a server leaves, watched too
    return path


@pytest.mark.parametrize(
    ("lose", "why"),
    [
        (lambda p: p.unlink(), "was deleted"),
        (lambda p: os.replace(p, p.with_name("moved.db")), "was moved away"),
        (
            lambda p: (p.with_name("other").write_bytes(b"x"), os.replace(p.with_name("other"), p)),
            "was replaced by another file",
        ),
        (lambda p: os.truncate(p, 0), "was truncated from"),
        (lambda p: p.open("r+b").write(b"garbage!" * 2), "was overwritten"),
    ],
    ids=["deleted", "moved", "replaced", "truncated", "overwritten"],
)
def test_a_lost_file_is_noticed(state: Path, lose: object, why: str) -> None:
    watch = StateFileWatch(state)
    assert watch.lost() is None
    lose(state)  # type: ignore[operator]
    found = watch.lost()
    assert found is not None and why in found
    watch.close()


@pytest.mark.parametrize(
    ("lose", "why"),
    [
        (lambda p: p.unlink(), "was deleted"),
        (lambda p: os.truncate(p, 0), "was truncated from"),
        (lambda p: p.open("r+b").write(b"\0\0\0\0"), "was overwritten"),
    ],
    ids=["deleted", "truncated", "overwritten"],
)
def test_a_lost_write_ahead_log_is_noticed(state: Path, lose: object, why: str) -> None:
    """The log holds every change since the last checkpoint: losing it loses them."""
    connection = sqlite3.connect(state, isolation_level=None)
    connection.execute("INSERT INTO t VALUES (1)")  # the log exists while a connection is open
    wal = state.with_name(state.name + "-wal")
    watch = StateFileWatch(state)
    assert watch.lost() is None
    lose(wal)  # type: ignore[operator]
    found = watch.lost()
    assert found is not None and found.startswith(f"{wal} {why}")
    watch.close()
    connection.close()


def test_a_deleted_lock_file_is_noticed(state: Path) -> None:
    """Without it a second server could take the file beside this one."""
    watch = StateFileWatch(state)
    state.with_name("state.db.lock").unlink()
    assert watch.lost() == f"{state}.lock was deleted"
    watch.close()


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
        (lambda p: p.mkdir(), "is a directory"),
    ],
)
def test_paths_that_hold_no_state(tmp_path: Path, prepare: object, message: str) -> None:
    path = tmp_path / "state.db"
    prepare(path)  # type: ignore[operator]
    with pytest.raises(StateError, match=re.escape(message)):
        check_state_directory(path)
        check_state_file(path)
    check_state_directory(tmp_path / "fresh.db")  # missing: a fresh install
    check_state_file(tmp_path / "fresh.db")
