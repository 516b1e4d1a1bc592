"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl in a temp dir, a free port.

PostgreSQL refuses to run as root, and CI runs as root: the cluster then runs
as the ``postgres`` user (Debian's package creates it) in a directory under
/tmp that it owns (pytest's tmp_path sits under a 0700 root directory).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.support.processes import free_port


def postgres_bin() -> Path | None:
    """Debian installs PostgreSQL's server tools off PATH, one directory per major version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def require_postgres() -> Path:
    """The server tools' directory; missing fails in CI (``.ci/run`` installs them)."""
    found = postgres_bin()
    if found is None and not os.environ.get("CI"):
        pytest.skip("PostgreSQL server tools not installed (apt-get install postgresql)")
    assert found is not None, "CI must install postgresql (see .ci/run)"
    return found


class PostgresCluster:
    """One initdb'd cluster, started; ``database()`` hands out a fresh empty database."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(dir="/tmp", prefix="xds-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        options = (
            f"-k {self.root} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c max_connections=200"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        """Stop it at once (connections are cut), as an outage would."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def password_user(self, user: str, password: str) -> str:
        """A role that must log in with ``password`` (scram, over TCP); a URL for a new
        database it owns, without the password."""
        url = self.database()
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{password}'")
            connection.execute(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" OWNER TO "{user}"')
        hba = self.data / "pg_hba.conf"
        rule = f"host all {user} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(rule + hba.read_text())  # the first matching line wins
        self._run("pg_ctl", "-D", str(self.data), "reload")
        time.sleep(0.5)  # the postmaster rereads pg_hba.conf on SIGHUP
        return url.replace("postgres@", f"{user}@")

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=1).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
