"""Guarding the SQLite state file: one owner, and noticing when it is lost.

SQLite itself neither stops a second server from using the same file (both
would serve, only one would push) nor notices when the file is deleted,
replaced or truncated under it (it keeps writing to the open, unlinked
inode, and the next start finds nothing). This module does both:

- ``StateFileLock`` holds an exclusive ``flock`` on ``FILE.lock`` for the
  process's life and records the holder's PID in it;
- ``StateFileWatch`` keeps its own descriptors on the file, its write-ahead
  log and the lock file and checks, before every write (and after it), that
  they are still the files at those paths, that neither SQLite file shrank,
  and that each still starts as SQLite writes it.

Never close a descriptor of the database file while SQLite has it open:
POSIX drops every lock a process holds on a file when any of its
descriptors of that file closes. ``StateFileWatch.close`` runs after the
connection is closed. (``flock`` has no such trap: it belongs to one open file
description, so other descriptors of the lock file may come and go.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from xds_server.errors import StateError

SQLITE_HEADER = b"SQLite format 3\x00"
# A write-ahead log starts with one of these (big- or little-endian checksums).
WAL_MAGICS = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")


def check_state_directory(path: Path) -> None:
    """Refuse, before anything is created, a path that cannot hold a state file."""
    if path.is_dir():
        raise StateError(f"--state {path} is a directory: give a file path, e.g. {path}/state.db")
    parent = path.parent
    if not parent.is_dir():
        raise StateError(
            f"--state {path}: directory {parent} does not exist: create it, "
            "or give a path in an existing directory"
        )


def check_state_file(path: Path) -> None:
    """Refuse a file that holds no state (checked once this server owns the path).

    A fresh install is a missing file. An empty (0-byte) file is not: it is
    what a truncated state file looks like, so it is refused rather than
    taken as a new, empty state.
    """
    if path.exists() and path.stat().st_size == 0:
        raise StateError(
            f"state file {path} is empty (0 bytes): it is not a state file, and a state "
            "file cut to nothing looks the same, so it is not taken as a fresh install: "
            "restore it from a backup (`xdsctl state import` on a server with a new --state), "
            "or delete it to start with an empty state"
        )


def lock_path(state: Path) -> Path:
    return state.with_name(state.name + ".lock")


class StateFileLock:
    """An exclusive lock on ``FILE.lock``, held until ``release``."""

    def __init__(self, state: Path) -> None:
        self.path = lock_path(state)
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
class _Watched:
    """A descriptor held on one file: who the file was when opened, and how it may change.

    ``grows``: the file never shrinks (SQLite's database and log only grow:
    no VACUUM, no journal_size_limit, no TRUNCATE checkpoint here); ``starts``:
    what a non-empty file begins with.
    """

    path: Path
    fd: int
    device: int
    inode: int
    grows: bool = False
    starts: tuple[bytes, ...] = ()
    size: int = 0

    @classmethod
    def of(cls, path: Path, grows: bool = False, starts: tuple[bytes, ...] = ()) -> _Watched:
        fd = os.open(path, os.O_RDONLY)
        status = os.fstat(fd)
        return cls(path, fd, status.st_dev, status.st_ino, grows, starts, status.st_size)

    def lost(self) -> str | None:
        """Why this is no longer the file it was, or None."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            gone = os.fstat(self.fd).st_nlink == 0
            return f"{self.path} was {'deleted' if gone else 'moved away'}"
        if (now.st_dev, now.st_ino) != (self.device, self.inode):
            return f"{self.path} was replaced by another file"
        if self.grows and now.st_size < self.size:
            return f"{self.path} was truncated from {self.size} to {now.st_size} bytes"
        if self.starts and now.st_size > 0:
            head = os.pread(self.fd, len(self.starts[0]), 0)
            if head not in self.starts:
                return f"{self.path} was overwritten: it no longer starts as SQLite writes it"
        self.size = max(self.size, now.st_size)
        return None


class StateFileWatch:
    """Notices the state file, its write-ahead log or its lock file deleted, moved,
    replaced, cut short or overwritten."""

    def __init__(self, state: Path) -> None:
        self._files = [
            _Watched.of(state, grows=True, starts=(SQLITE_HEADER,)),
            # Gone, another server could take the file (StateFileLock) beside this one.
            _Watched.of(lock_path(state)),
        ]
        self._wal_path = state.with_name(state.name + "-wal")
        self._wal_seen = False
        self._watch_wal()

    def _watch_wal(self) -> None:
        # SQLite creates the log with the first transaction; watch it from then on.
        if not self._wal_seen:
            with contextlib.suppress(FileNotFoundError):
                self._files.append(_Watched.of(self._wal_path, grows=True, starts=WAL_MAGICS))
                self._wal_seen = True

    def lost(self) -> str | None:
        """What happened to the files, or None while they are intact."""
        for watched in self._files:
            why = watched.lost()
            if why is not None:
                return why
        self._watch_wal()
        return None

    def close(self) -> None:
        for watched in self._files:
            os.close(watched.fd)
