"""State that no bad input, lost file or second server can corrupt: the real server and
CLI against hand-edited imports, edited or damaged state files, a second server, a
deleted or truncated file, a full disk and an unwritable file."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import XDSCTL, CliResult, ServerProcess, free_port
from tests.support.stack import Stack, wait_until


def _prime(server: ServerProcess) -> None:
    """default: blue 90 / green 10 with a 5% mirror; shop with a domain and a deployment."""
    for args in (
        ("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:8080"),
        ("apply", "--bluegreen", "--endpoint", "10.0.0.9:8080"),
        ("traffic", "set", "--tags", "blue=90,green=10", "--mirror", "green=5"),
        ("services", "set", "shop", "--domain", "shop.example.com"),
        ("apply", "--service", "shop", "--endpoint", "10.0.0.7:80"),
    ):
        result = server.xdsctl(*args)
        assert result.returncode == 0, result.stderr


def _serve(state: Path, *extra: str) -> CliResult:
    """`xdsctl serve` expected to refuse to start: its exit code and output."""
    completed = subprocess.run(
        [
            *XDSCTL,
            "serve",
            "--state",
            str(state),
            *extra,
            *(f"--{port}-listen=127.0.0.1:{free_port()}" for port in ("api", "xds", "metrics")),
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


def _one_line_refusal(result: CliResult, message: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("xdsctl serve:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


@pytest.fixture(scope="module")
def primed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    server = ServerProcess(tmp_path_factory.mktemp("imports") / "state.db").start()
    _prime(server)
    exported = server.xdsctl("state", "export")
    assert exported.returncode == 0
    yield server, exported.stdout
    server.stop()


def _first(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(i for i in items if all(i.get(k) == v for k, v in match.items()))


def _blue(d: dict[str, Any]) -> dict[str, Any]:
    return _first(d["world"]["deployments"], service="default", tag="blue")


def _default(d: dict[str, Any]) -> dict[str, Any]:
    return _first(d["world"]["services"], name="default")


def _latest(d: dict[str, Any]) -> dict[str, Any]:
    return _first(d["history"], service="default", revision=3)


IMPORTS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "boolean weight",
        lambda d: _default(d)["weights"].__setitem__("blue", True),
        "weights.blue: Input should be a valid integer (got True)",
    ),
    (
        "serving deployment scaled down",
        lambda d: _blue(d).__setitem__("state", "scaled_down"),
        "is scaled_down but holds tag blue",
    ),
    (
        "serving deployment without endpoints",
        lambda d: _blue(d).__setitem__("endpoints", []),
        "a deployment needs at least one endpoint",
    ),
    (
        "duplicate service",
        lambda d: d["world"]["services"].append({**_default(d), "weights": {"green": 100}}),
        "service default is listed twice",
    ),
    (
        "duplicate deployment id",
        lambda d: d["world"]["deployments"].append({**_blue(d), "tag": None}),
        "is listed twice",
    ),
    (
        "fractional revision",
        lambda d: _default(d).__setitem__("revision", 16.5),
        "revision: Input should be a valid integer (got 16.5)",
    ),
    (
        "history weights 500/-400",
        lambda d: _latest(d)["after"].__setitem__("weights", [["blue", 500], ["green", -400]]),
        "(service default, revision 3).after: weight of blue must be from 0 to 100 (got 500)",
    ),
    (
        "history binding another service's deployment",
        lambda d: _latest(d)["after"]["bindings"].__setitem__(
            0, ["blue", _first(d["world"]["deployments"], service="shop")["id"]]
        ),
        "of service shop",
    ),
]


@pytest.mark.parametrize(("what", "edit", "message"), IMPORTS, ids=[i[0] for i in IMPORTS])
def test_a_refused_import_changes_nothing(
    primed: tuple[ServerProcess, str],
    tmp_path: Path,
    what: str,
    edit: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    """Refused (exit 1, where and what), `state export` unchanged, and the server
    restarts cleanly on its state afterwards."""
    server, exported = primed
    document = copy.deepcopy(json.loads(exported))
    edit(document)
    (tmp_path / "edited.json").write_text(json.dumps(document))
    result = server.xdsctl("state", "import", str(tmp_path / "edited.json"), "--replace")
    assert result.returncode == 1, result.stderr
    assert "nothing was imported" in result.stderr and message in result.stderr
    assert server.xdsctl("state", "export").stdout == exported
    server.restart()
    assert server.xdsctl("state", "export").stdout == exported
    assert server.xdsctl("traffic", "get").returncode == 0


def _edit_rows(state: Path, sql: str, *params: Any) -> None:
    """Change the file behind the server's back, as a broken tool would (its CHECK
    constraints, which guard a few columns, included)."""
    connection = sqlite3.connect(state)
    connection.execute("PRAGMA ignore_check_constraints = 1")
    with connection:
        connection.execute(sql, params)
    connection.close()


_NO_BINDINGS: dict[str, list[Any]] = {"bindings": []}


def test_a_bad_rollback_target_is_refused(tmp_path: Path) -> None:
    """A history row edited to weights 500/-400 in the file is refused as a rollback
    target (naming revision and rule); nothing changes and the server still restarts."""
    server = ServerProcess(tmp_path / "state.db").start()
    try:
        _prime(server)
        server.stop()
        _edit_rows(
            server.state,
            "UPDATE history SET after = ? WHERE service = 'default' AND revision = 2",
            json.dumps(
                {"weights": [["blue", 500], ["green", -400]], "mirrors": [], "bindings": []}
            ),
        )
        server.start()
        before = server.xdsctl("state", "export").stdout
        result = server.xdsctl("traffic", "rollback", "--to-revision", "2")
        assert result.returncode == 1, result.stderr
        assert "cannot roll back service default to revision 2" in result.stderr
        assert "weight of blue must be from 0 to 100 (got 500)" in result.stderr
        assert server.xdsctl("state", "export").stdout == before
        server.restart()
        assert server.xdsctl("state", "export").stdout == before
    finally:
        server.stop()


STATE_EDITS = [
    (
        "serving deployment scaled down",
        "UPDATE deployments SET state = 'scaled_down' WHERE tag = 'blue' AND service = 'default'",
        "breaks these rules, so this server will not serve it",
    ),
    (
        "boolean weight",
        """UPDATE services SET weights = '[["blue", true], ["green", 10]]' """
        "WHERE name = 'default'",
        "weight of blue must be a whole number from 0 to 100 (got True)",
    ),
    (
        "weights that are not JSON",
        "UPDATE services SET weights = 'blue=90' WHERE name = 'default'",
        "cannot be read (JSONDecodeError",
    ),
    ("unknown state", "UPDATE deployments SET state = 'gone'", "cannot be read"),
]


@pytest.mark.parametrize(("what", "sql", "message"), STATE_EDITS, ids=[e[0] for e in STATE_EDITS])
def test_a_broken_state_file_is_refused_at_start_up(
    tmp_path: Path, what: str, sql: str, message: str
) -> None:
    """The server checks what it loads: a state that breaks a rule is refused with one
    line and exit 1 (its Envoys keep their last config), never served, never a traceback."""
    server = ServerProcess(tmp_path / "state.db").start()
    _prime(server)
    server.stop()
    _edit_rows(server.state, sql)
    _one_line_refusal(_serve(server.state), message)


@pytest.mark.envoy
def test_envoys_keep_their_config_while_the_state_is_refused(tmp_path: Path) -> None:
    """A real Envoy loses its control plane, whose restart is refused (the state file
    was broken meanwhile): Envoy keeps serving what it had."""
    stack = Stack(workdir=tmp_path, delta=False)
    try:
        server = stack.start_server()
        blue = stack.upstream("blue")
        stack.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", blue.endpoint)
        stack.start_envoy()
        stack.wait_all("blue")
        server.stop()
        _edit_rows(server.state, "UPDATE deployments SET state = 'scaled_down'")
        _one_line_refusal(_serve(server.state), "breaks these rules")
        assert stack.sample(20) == Counter({"blue": 20})
    finally:
        stack.close()


def test_damaged_pages_are_refused_at_start_up(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state.db").start()
    _prime(server)
    server.stop()
    connection = sqlite3.connect(server.state)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    with server.state.open("r+b") as file:
        file.seek(4096)  # page 2 onwards: tables and indexes, not the header
        file.write(b"\xde\xad" * 4096)
    result = _serve(server.state)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "damaged" in result.stderr or "cannot be read" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_bytes(b""), "is empty (0 bytes): it is not a state file"),
        (lambda p: p.mkdir(), "is a directory: give a file path"),
        (lambda p: None, "does not exist: create it"),
        (
            lambda p: (
                sqlite3.connect(p).execute("CREATE TABLE notes (text TEXT)").connection.close()
            ),
            "is an SQLite database of something else (schema version 0, tables: notes)",
        ),
    ],
    ids=["empty file", "directory", "missing directory", "foreign database"],
)
def test_a_path_that_holds_no_state_is_refused(
    tmp_path: Path, make: Callable[[Path], Any], message: str
) -> None:
    """Only a missing file is a fresh install."""
    state = tmp_path / "state.db"
    if "does not exist" in message:
        state = tmp_path / "nowhere" / "state.db"
    make(state)
    _one_line_refusal(_serve(state), message)


def test_a_read_only_state_file_is_refused_at_start_up(tmp_path: Path) -> None:
    """Immutable (chattr +i: root ignores mode bits): refused with the cause, not
    opened read-only to fail at the first write."""
    _is_root()
    server = ServerProcess(tmp_path / "state.db").start()
    _prime(server)
    server.stop()
    subprocess.run(["chattr", "+i", str(server.state)], check=True)
    try:
        _one_line_refusal(_serve(server.state), "is read-only")
    finally:
        subprocess.run(["chattr", "-i", str(server.state)], check=True)


def test_two_servers_cannot_share_a_file(tmp_path: Path) -> None:
    """The second one refuses to start, naming the first one's PID; the first serves on."""
    first = ServerProcess(tmp_path / "state.db").start()
    try:
        assert first.process is not None
        result = _serve(first.state)
        _one_line_refusal(result, f"is in use by another xdsctl serve (PID {first.process.pid}")
        assert first.xdsctl("apply", "--in-place", "--endpoint", "10.0.0.5:80").returncode == 0
    finally:
        first.stop()


def _refused_writes(server: ServerProcess, message: str) -> None:
    """A write is refused naming ``message``, and the server says so everywhere."""
    result = server.xdsctl("apply", "--in-place", "--endpoint", "10.0.0.6:80")
    assert result.returncode == 1, result.stderr
    assert "the state store refuses to write" in result.stderr and message in result.stderr
    wait_until(lambda: server.http("/readyz")[0] == 503, what="readiness to fail")
    assert message in server.http("/readyz")[1]
    status = server.xdsctl("status")
    assert status.returncode == 0 and "store: unavailable since" in status.stdout
    assert server.metric("xds_store_available") == 0
    assert (server.metric("xds_store_errors_total", kind="file_lost") or 0) >= 1
    assert any(
        e["kind"] == "file_lost" and message in e["error"] for e in server.log_events("store.error")
    )


def test_a_deleted_state_file_is_noticed_and_recovered(tmp_path: Path) -> None:
    """`rm state.db*` while running: writes refused, readiness fails, the log says why;
    reads still work, so the state can be exported and brought back after a restart."""
    server = ServerProcess(tmp_path / "state.db").start()
    try:
        _prime(server)
        before = server.xdsctl("traffic", "get").stdout
        for path in tmp_path.glob("state.db*"):
            path.unlink()
        _refused_writes(server, "was deleted")
        saved = server.xdsctl("state", "export")
        assert saved.returncode == 0
        (tmp_path / "saved.json").write_text(saved.stdout)
        server.restart()  # a missing file is a fresh install
        assert server.xdsctl("state", "import", str(tmp_path / "saved.json")).returncode == 0
        assert server.xdsctl("traffic", "get").stdout == before
    finally:
        server.stop()


def test_a_truncated_state_file_is_noticed(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "state.db").start()
    try:
        _prime(server)
        os.truncate(server.state, 0)
        _refused_writes(server, "was truncated")
    finally:
        server.stop()


def _is_root() -> bool:
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("mounting a tmpfs and chattr need root (CI runs as root)")
    return True


@contextlib.contextmanager
def _small_disk(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _store_failure_shows(server: ServerProcess, result: CliResult, kind: str, text: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "the state store could not write" in result.stderr, result.stderr
    assert text in result.stderr and "nothing was changed" in result.stderr
    assert "Unexpected" not in result.stderr and "Traceback" not in result.stderr
    assert server.metric("xds_store_available") == 0
    assert server.metric("xds_store_errors_total", kind=kind) == 1
    assert "store: unavailable since" in server.xdsctl("status").stdout
    logged = [e for e in server.log_events("store.error") if e["kind"] == kind]
    assert len(logged) == 1 and text in logged[0]["error"]


def _recovers(server: ServerProcess) -> None:
    assert server.xdsctl("apply", "--in-place", "--endpoint", "10.0.0.8:80").returncode == 0
    assert server.metric("xds_store_available") == 1
    assert "store: available" in server.xdsctl("status").stdout


def _fill(path: Path) -> None:
    """Append to ``path`` until its file system refuses a single byte more."""
    with path.open("ab", buffering=0) as file:
        for chunk in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    file.write(b"\0" * chunk)


def test_a_full_disk_is_a_clear_refusal(tmp_path: Path) -> None:
    """A tmpfs filled up: the write is refused with the cause and the fix, counted, logged
    once, shown by status and the metric, and cleared by the next write that succeeds.
    (The log goes elsewhere, as a journal or a collector's pipe would take it.)"""
    _is_root()
    with _small_disk(tmp_path / "disk", "4m") as disk:
        server = ServerProcess(disk / "state.db", log=tmp_path / "server.log").start()
        try:
            _prime(server)
            before = server.xdsctl("state", "export").stdout
            _fill(disk / "filler")
            result = server.xdsctl("apply", "--in-place", "--endpoint", "10.0.0.6:80")
            _store_failure_shows(server, result, "disk_full", f"disk full at {disk}")
            assert server.xdsctl("state", "export").stdout == before
            (disk / "filler").unlink()
            _recovers(server)
        finally:
            server.stop()


def test_a_log_on_the_full_disk_does_not_fail_requests(tmp_path: Path) -> None:
    """The log file shares the full disk: its lines are counted as dropped, and the
    write is still refused for the store's reason, not for the log's."""
    _is_root()
    with _small_disk(tmp_path / "disk", "4m") as disk:
        server = ServerProcess(disk / "state.db").start()
        try:
            _prime(server)
            _fill(disk / "filler")
            _fill(server.log)  # not even the log's last page has room
            result = server.xdsctl("apply", "--in-place", "--endpoint", "10.0.0.6:80")
            assert result.returncode == 1, result.stderr
            assert f"disk full at {disk}" in result.stderr, result.stderr
            assert "Unexpected" not in result.stderr
            assert (server.metric("xds_log_lines_dropped") or 0) >= 1
            (disk / "filler").unlink()
            assert server.xdsctl("apply", "--in-place", "--endpoint", "10.0.0.8:80").returncode == 0
        finally:
            server.stop()


def test_an_unwritable_file_is_a_clear_refusal(tmp_path: Path) -> None:
    """The state file made immutable (chattr +i) under the running server."""
    _is_root()
    server = ServerProcess(tmp_path / "state.db").start()
    files = [str(tmp_path / "state.db"), str(tmp_path / "state.db-wal")]
    try:
        _prime(server)
        subprocess.run(["chattr", "+i", *files], check=True)
        result = server.xdsctl("apply", "--in-place", "--endpoint", "10.0.0.6:80")
        _store_failure_shows(server, result, "io", "I/O error on")
        subprocess.run(["chattr", "-i", *files], check=True)
        _recovers(server)
    finally:
        subprocess.run(["chattr", "-i", *files], check=False)
        server.stop()
