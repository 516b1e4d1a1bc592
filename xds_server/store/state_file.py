"""Guarding the SQLite state file: one owner, and noticing when it is lost.

SQLite itself neither stops a second server from using the same file (both
would serve, only one would push) nor notices when the file is deleted,
replaced or truncated under it (it keeps writing to the open, unlinked
inode, and the next start finds nothing). This module does both:

- ``StateFileLock`` holds an exclusive ``flock`` on ``FILE.lock`` for the
  process's life and records the holder's PID in it;
- ``StateFileWatch`` keeps its own descriptors on the file and its
  write-ahead log and checks, before every write, that they are still the
  files at those paths and that the file never shrank.

Never close a descriptor of the database file while SQLite has it open:
POSIX drops every lock a process holds on a file when any of its
descriptors of that file closes. ``StateFileWatch.close`` runs after the
connection is closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from xds_server.errors import StateError

SQLITE_HEADER = b"SQLite format 3\x00"


def check_state_path(path: Path) -> None:
    """Refuse, before opening, a path that cannot hold the state or holds something else.

    A fresh install is a missing file. An empty (0-byte) file is not: it is
    what a truncated state file looks like, so it is refused rather than
    taken as a new, empty state.
    """
    if path.is_dir():
        raise StateError(f"--state {path} is a directory: give a file path, e.g. {path}/state.db")
    parent = path.parent
    if not parent.is_dir():
        raise StateError(
            f"--state {path}: directory {parent} does not exist: create it, "
            "or give a path in an existing directory"
        )
    if path.exists() and path.stat().st_size == 0:
        raise StateError(
            f"state file {path} is empty (0 bytes): it is not a state file, and a state "
            "file cut to nothing looks the same, so it is not taken as a fresh install: "
            "restore it from a backup (`xdsctl state import` on a server with a new --state), "
            "or delete it to start with an empty state"
        )


class StateFileLock:
    """An exclusive lock on ``FILE.lock``, held until ``release``."""

    def __init__(self, state: Path) -> None:
        self.path = state.with_name(state.name + ".lock")
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise StateError(f"cannot create lock file {self.path}: {error.strerror}") from error
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise StateError(
                f"state file {state} is in use by another xdsctl serve (PID {holder}, "
                f"holding {self.path}): stop that server, or give this one its own --state FILE"
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        # Closing the descriptor drops the flock; the file stays for the next owner.
        os.close(self._fd)


@dataclass
class _Opened:
    """A descriptor held on one file, and who that file was when it was opened."""

    path: Path
    fd: int
    device: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> _Opened:
        fd = os.open(path, os.O_RDONLY)
        status = os.fstat(fd)
        return cls(path, fd, status.st_dev, status.st_ino)

    def lost(self) -> str | None:
        """Why this is no longer the file at its path, or None."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            gone = os.fstat(self.fd).st_nlink == 0
            return f"{self.path} was {'deleted' if gone else 'moved away'}"
        if (now.st_dev, now.st_ino) != (self.device, self.inode):
            return f"{self.path} was replaced by another file"
        return None


class StateFileWatch:
    """Notices the state file (or its write-ahead log) deleted, replaced or cut short."""

    def __init__(self, state: Path) -> None:
        self._state = _Opened.of(state)
        self._size = os.fstat(self._state.fd).st_size
        self._wal_path = state.with_name(state.name + "-wal")
        self._wal: _Opened | None = None
        self._watch_wal()

    def _watch_wal(self) -> None:
        # SQLite creates the log with the first transaction; watch it from then on.
        if self._wal is None:
            with contextlib.suppress(FileNotFoundError):
                self._wal = _Opened.of(self._wal_path)

    def lost(self) -> str | None:
        """What happened to the file, or None while it is intact."""
        for opened in (self._state, self._wal):
            why = opened.lost() if opened is not None else None
            if why is not None:
                return why
        size = os.fstat(self._state.fd).st_size
        # Without VACUUM (never run here) SQLite's file only grows.
        if size < self._size:
            return f"{self._state.path} was truncated from {self._size} to {size} bytes"
        if os.pread(self._state.fd, len(SQLITE_HEADER), 0) != SQLITE_HEADER:
            return f"{self._state.path} was overwritten: it no longer starts as an SQLite file"
        self._size = size
        self._watch_wal()
        return None

    def close(self) -> None:
        for opened in (self._state, self._wal):
            if opened is not None:
                os.close(opened.fd)
