"""Bad input through the real CLI: the right exit code, a message with the fix, no change."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.bad_input import BAD_INPUT
from tests.support.processes import XDSCTL, ServerProcess


@pytest.fixture(scope="module")
def primed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict]]:
    """blue at 100 and green at 0 on `default`; `shop` with one domain and one deployment."""
    server = ServerProcess(tmp_path_factory.mktemp("bad") / "state.db").start()
    ids = {}
    for name, args in (
        ("blue", ("--deployment-tag", "blue", "--endpoint", "10.0.0.5:8080")),
        ("green", ("--bluegreen", "--endpoint", "10.0.0.9:8080")),
        ("shop", ("--service", "shop", "--endpoint", "10.0.0.7:80")),
    ):
        result = server.xdsctl("apply", *args, "-o", "json")
        assert result.returncode == 0, result.stderr
        ids[name] = result.json()["deployment_id"]
    assert server.xdsctl("services", "set", "shop", "--domain", "shop.example.com").returncode == 0
    taken = server.xdsctl("hooks", "add", "taken", "--url", "http://127.0.0.1:9/hook")
    assert taken.returncode == 0, taken.stderr
    yield server, ids
    server.stop()


@pytest.mark.parametrize(("args", "code", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input(primed: tuple[ServerProcess, dict], args: str, code: int, message: str) -> None:
    """Refused with the documented exit code and message; the state is untouched."""
    server, ids = primed
    before = server.snapshot()
    result = server.xdsctl(*args.format(**ids).split())
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert server.snapshot() == before


TOKEN_LIKE = "xdst_" + "Q" * 43


@pytest.mark.parametrize(
    "args",
    [
        ("traffic", "get", "--service", TOKEN_LIKE),
        ("apply", "--deployment-tag", TOKEN_LIKE, "--endpoint", "10.0.0.1:80"),
        ("apply", "--endpoint", f"{TOKEN_LIKE}:80"),
        ("deployments", "get", TOKEN_LIKE),
    ],
    ids=["service", "tag", "endpoint", "deployment id"],
)
def test_a_token_pasted_as_a_value_is_never_echoed(
    primed: tuple[ServerProcess, dict], args: tuple[str, ...]
) -> None:
    """Whoever echoes the value (the server's refusal, the CLI's parser), the CLI prints
    it redacted, and the server's log has it redacted too."""
    server, _ids = primed
    result = server.xdsctl(*args)
    assert result.returncode in (1, 2), result.stderr
    assert "xdst_<redacted>" in result.stderr
    assert TOKEN_LIKE not in result.stderr + result.stdout
    assert TOKEN_LIKE not in server.log.read_text()


def _race(server: ServerProcess, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    env = {"XDSCTL_SERVER": server.address}
    processes = [
        subprocess.Popen(
            [*XDSCTL, *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for command in commands
    ]
    return [
        subprocess.CompletedProcess(p.args, p.wait(timeout=60), *p.communicate()) for p in processes
    ]


class TestConcurrency:
    def test_if_revision_race_has_one_winner(self, tmp_path: Path) -> None:
        """Two clients racing the same --if-revision: one commits, the other is refused."""
        server = ServerProcess(tmp_path / "state.db").start()
        try:
            server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80")
            server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:80")
            for round_ in range(3):
                revision = server.xdsctl("traffic", "get").yaml()["revision"]
                results = _race(
                    server,
                    *[
                        [
                            "traffic",
                            "set",
                            "--tags",
                            f"blue={100 - i},green={i}",
                            "--if-revision",
                            str(revision),
                        ]
                        for i in (10 + round_, 20 + round_)
                    ],
                )
                codes = sorted(r.returncode for r in results)
                # The loser is told it lost a race (exit 6): re-read and retry is safe.
                assert codes == [0, 6], [r.stderr for r in results]
                loser = next(r for r in results if r.returncode == 6)
                assert f"at revision {revision + 1}, not {revision}" in loser.stderr
                winner = next(r for r in results if r.returncode == 0)
                got = server.xdsctl("traffic", "get").yaml()
                assert got["revision"] == revision + 1
                assert got["tags"] == yaml.safe_load(winner.stdout)["tags"]
        finally:
            server.stop()

    def test_unguarded_writers_lose_nothing(self, tmp_path: Path) -> None:
        """Without --if-revision, racing writers are serialised: both land in history."""
        server = ServerProcess(tmp_path / "state.db").start()
        try:
            server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80")
            server.xdsctl("apply", "--bluegreen", "--endpoint", "10.0.0.9:80")
            results = _race(
                server,
                ["traffic", "set", "--tags", "blue=70,green=30"],
                ["traffic", "set", "--tags", "blue=60,green=40"],
            )
            assert [r.returncode for r in results] == [0, 0]
            history = server.xdsctl("traffic", "history", "-o", "json").json()
            assert [e["revision"] for e in history[:2]] == [4, 3]
            assert {tuple(e["after"]["weights"].values()) for e in history[:2]} == {
                (70, 30),
                (60, 40),
            }
            # Each change's "before" is the other's "after" or the start: none was lost.
            assert history[0]["before"] == history[1]["after"]
        finally:
            server.stop()
