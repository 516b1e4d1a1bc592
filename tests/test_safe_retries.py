"""Safe retries: a write whose answer is lost says so (exit 7, not 3), and repeating it
with the same request id applies it once, on a restarted server too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cut_proxy import ResponseCuttingProxy
from tests.support.processes import ServerProcess, free_port, run_xdsctl


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "state.db").start()
    yield process
    process.stop()


def _through(
    proxy: ResponseCuttingProxy, *args: str, request_id: str, token: str | None = None
) -> tuple[int, str]:
    env = {"XDSCTL_SERVER": proxy.address, "XDSCTL_REQUEST_ID": request_id}
    result = run_xdsctl(*args, env=env | ({"XDSCTL_TOKEN": token} if token else {}))
    return result.returncode, result.stderr


def _again(server: ServerProcess, *args: str, request_id: str) -> tuple[int, str, str]:
    result = server.xdsctl(*args, env={"XDSCTL_REQUEST_ID": request_id})
    return result.returncode, result.stdout, result.stderr


def test_a_lost_answer_is_unknown_and_a_repeat_applies_once(server: ServerProcess) -> None:
    proxy = ResponseCuttingProxy(server.address)
    try:
        apply = ("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:8080", "-o", "json")
        code, stderr = _through(proxy, *apply, request_id="release-42")
        assert proxy.cuts == 1
        assert code == 7, stderr
        assert "may or may not have been applied" in stderr
        assert "XDSCTL_REQUEST_ID=release-42" in stderr
        listed = server.xdsctl("deployments", "list", "-o", "json").json()
        assert len(listed) == 1  # the server did commit it

        code, stdout, stderr = _again(server, *apply, request_id="release-42")
        assert code == 0, stderr
        assert "request release-42 was applied by an earlier run" in stderr
        assert server.xdsctl("deployments", "list", "-o", "json").json() == listed
        assert __import__("json").loads(stdout)["deployment_id"] == listed[0]["id"]

        server.restart()  # remembered in the store, not in memory
        code, stdout, _ = _again(server, *apply, request_id="release-42")
        assert code == 0
        assert server.xdsctl("deployments", "list", "-o", "json").json() == listed
        assert len(server.xdsctl("traffic", "history", "-o", "json").json()) == 1

        other = ("apply", "--endpoint", "10.0.0.6:8080")
        code, _, stderr = _again(server, *other, request_id="release-42")
        assert code == 1 and "already used for a different request" in stderr
    finally:
        proxy.close()


def test_traffic_changes_repeat_once(server: ServerProcess) -> None:
    for args in (
        ("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"),
        ("apply", "--bluegreen", "--endpoint", "10.0.0.9:80"),
    ):
        assert server.xdsctl(*args).returncode == 0
    proxy = ResponseCuttingProxy(server.address)
    try:
        for _ in range(2):
            code, _ = _through(proxy, "traffic", "promote", request_id="promote-1")
            assert code == 7
        first = server.xdsctl("traffic", "get").yaml()
        code, _, _ = _again(server, "traffic", "promote", request_id="promote-1")
        assert code == 0
        # promote is not idempotent (again = rollback): the repeat must not run it again.
        assert server.xdsctl("traffic", "get").yaml() == first
        assert first["revision"] == 3
    finally:
        proxy.close()


def test_a_repeated_token_creation_is_refused_not_reissued(server: ServerProcess) -> None:
    """The secret is shown once: a repeat says the token exists and how to replace it."""
    admin = server.xdsctl("tokens", "create", "--name", "admin", "--role", "admin")
    server.token = admin.stdout.strip()
    proxy = ResponseCuttingProxy(server.address)
    try:
        create = ("tokens", "create", "--name", "ci-bot", "--role", "operator")
        code, _ = _through(proxy, *create, request_id="token-1", token=server.token)
        assert code == 7
        code, stdout, stderr = _again(server, *create, request_id="token-1")
        assert code == 1 and stdout == ""
        assert "already created token ci-bot" in stderr
        assert "xdsctl tokens revoke ci-bot" in stderr
    finally:
        proxy.close()


def test_an_unreachable_server_is_exit_3(tmp_path: Path) -> None:
    """Nothing was sent: exit 3, and retrying is always safe."""
    result = run_xdsctl(
        "traffic", "set", "--tags", "blue=100", env={"XDSCTL_SERVER": f"127.0.0.1:{free_port()}"}
    )
    assert result.returncode == 3, result.stderr
    assert "cannot reach the xds_server" in result.stderr


def test_a_bad_request_id_is_a_usage_error(server: ServerProcess) -> None:
    result = server.xdsctl("apply", "--endpoint", "10.0.0.5:80", env={"XDSCTL_REQUEST_ID": "a b"})
    assert result.returncode == 2 and "XDSCTL_REQUEST_ID is not a request id" in result.stderr
