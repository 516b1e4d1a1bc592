"""Files that hold secrets (tokens, private keys, the database password): read with a
warning when others can read them too, written readable by their owner only."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from xds_server.cli.client import EXIT_USAGE
from xds_server.errors import CliError


def warn_if_shared(path: Path, what: str) -> None:
    """Warn when group or others may read ``path`` (a secret should be mode 0600)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # reading it will say what is wrong
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"xdsctl: warning: {what} {path} can be read by others (mode "
            f"{stat.S_IMODE(mode):04o}): restrict it with `chmod 600 {path}`",
            file=sys.stderr,
        )


def read_secret(path: Path, flag: str) -> str:
    """The secret in ``path`` (surrounding whitespace dropped), warning if it is shared."""
    warn_if_shared(path, flag)
    try:
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) else "it is not text"
        raise CliError(f"cannot read {flag} {path}: {why}", EXIT_USAGE) from error
    if not secret:
        raise CliError(f"{flag} {path} is empty: put the secret in it", EXIT_USAGE)
    return secret


def write_secret(path: Path, secret: str) -> None:
    """Write ``secret`` to ``path`` readable by its owner only (an existing file too)."""
    try:
        # O_NOFOLLOW: a symlink planted at the path does not redirect the secret.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(secret + "\n")
    except OSError as error:
        raise CliError(f"cannot write {path}: {error.strerror}", EXIT_USAGE) from error


def warn_if_stdout_shared(what: str) -> None:
    """Warn when stdout is a file others can read (``xdsctl tokens create > file``)."""
    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError):
        return
    if stat.S_ISREG(mode) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(
            f"xdsctl: warning: {what} went to a file others can read (mode "
            f"{stat.S_IMODE(mode):04o}): `chmod 600` it, or use --output-file FILE, "
            "which writes it readable by you only",
            file=sys.stderr,
        )
