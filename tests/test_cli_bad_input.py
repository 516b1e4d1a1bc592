"""Bad input through the real CLI: the right exit code, a message with the fix, no change."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import XDSCTL, ServerProcess


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
    yield server, ids
    server.stop()


# (arguments, exit code, a part of the message); {blue} and {green} are deployment ids.
BAD_INPUT = [
    (
        "traffic set --tags blue=90,green=20",
        1,
        "weights must add up to 100 (got blue=90, green=20 = 110)",
    ),
    # Weights are plain digits 0-100: a sign or a value beyond 100 is a usage error (the
    # server refuses the same from any other API client: tests/test_operations.py).
    (
        "traffic set --tags blue=-10,green=110",
        2,
        "weight '-10' of tag blue is not a whole number in plain digits",
    ),
    ("traffic set --tags blue=101", 2, "weight of blue must be from 0 to 100 (got 101)"),
    ("traffic set --tags blue=9.5,green=90.5", 2, "weight '9.5' of tag blue is not a whole number"),
    ("traffic set --tags blue=50,blue=50", 1, "tag blue is listed twice in --tags"),
    (
        "traffic set --tags blue=90,purple=10",
        1,
        "no deployment of service default holds tag purple",
    ),
    ("traffic set --tags blue", 2, "--tags 'blue' is malformed"),
    ("traffic set --tags blue=90,,green=10", 2, "is malformed at ''"),
    ("traffic set --tags Blue=100", 1, "tag 'Blue' is not valid: use a lowercase DNS label"),
    ("traffic set --tags blue=100 --mirror green=5", 1, "mirror target green is not in --tags"),
    (
        "traffic set --tags blue=100,green=0 --mirror blue=5",
        1,
        "mirror target blue already gets 100% of traffic",
    ),
    (
        "traffic set --tags blue=100,green=0 --mirror green=150",
        2,
        "mirror percent for green must be above 0 and at most 100 (got 150)",
    ),
    ("traffic set --tags blue=100,green=0 --mirror green=0", 2, "must be above 0"),
    ("traffic set --tags blue=100,green=0 --mirror green=5.125", 2, "at most two decimals"),
    ("traffic set --tags blue=100,green=0 --mirror green", 2, "--mirror 'green' is malformed"),
    (
        "traffic set --tags blue=90,green=10 --if-revision 1",
        1,
        "service default is at revision 2, not 1",
    ),
    (
        "traffic set --tags blue=100 --if-revision two",
        2,
        "argument --if-revision: 'two' is not a whole number in plain digits",
    ),
    ("traffic set", 2, "the following arguments are required: --tags"),
    ("traffic set --service nope --tags blue=100", 1, "service 'nope' does not exist"),
    ("traffic get --service nope", 1, "create it with `xdsctl apply --service nope"),
    ("traffic promote --to purple", 1, "tag purple is not in the traffic policy"),
    ("traffic promote --to blue", 1, "tag blue already carries 100% of traffic"),
    ("traffic promote --service shop", 1, "nothing to promote to"),
    ("traffic rollback --to-revision 99", 1, "service default has no revision 99"),
    ("traffic rollback --to-revision 0", 1, "service default has no revision 0"),
    ("traffic rollback --to-revision -1", 2, "'-1' is not a whole number in plain digits"),
    ("traffic rollback --to-revision 2", 1, "at revision 2 already"),
    ("apply --endpoint 10.0.0.1", 2, "endpoint '10.0.0.1' has no port"),
    ("apply --endpoint 10.0.0.1:70000", 2, "the port must be from 1 to 65535"),
    ("apply --endpoint ::1:80", 2, "put an IPv6 address in brackets, e.g. [::1]:80"),
    ("apply --endpoint bad_host:80", 2, "is not an IP address or a DNS name"),
    ("apply", 2, "give at least one --endpoint HOST:PORT"),
    ("apply --endpoint 10.0.0.1:80 --endpoint 10.0.0.1:80", 1, "is listed twice"),
    (
        "apply --deployment-tag blue --bluegreen --endpoint 10.0.0.1:80",
        2,
        "argument --bluegreen: not allowed with argument --deployment-tag",
    ),
    ("apply --deployment-tag Blue --endpoint 10.0.0.1:80", 1, "tag 'Blue' is not valid"),
    ("apply --label version --endpoint 10.0.0.1:80", 2, "write KEY=VALUE"),
    ("apply --service Bad_Name --endpoint 10.0.0.1:80", 1, "service name 'Bad_Name' is not valid"),
    ("apply --endpoint 10.0.0.1:80 --if-revision 0", 1, "service default is at revision 2, not 0"),
    (
        "services set cart --domain shop.example.com",
        1,
        "service shop holds shop.example.com already",
    ),
    ("services set shop --domain *", 1, "service default answers every host (*) already"),
    ("services set shop --domain shop.example.com:10000", 1, "has a port"),
    ("services set shop --domain a.example.com --domain a.example.com", 1, "given twice"),
    ("services set shop", 2, "the following arguments are required: --domain"),
    ("deployments get cnotthere", 1, "deployment 'cnotthere' does not exist"),
    ("deployments set-endpoints {blue} --endpoint nope", 2, "endpoint 'nope' has no port"),
    ("deployments set-endpoints cnotthere --endpoint 10.0.0.1:80", 1, "does not exist"),
    ("deployments delete {blue}", 1, "is active with tag blue"),
    ("traffic get -o xml", 2, "invalid choice: 'xml'"),
    ("trafic get", 2, "invalid choice: 'trafic'"),
]


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
                assert codes == [0, 1], [r.stderr for r in results]
                loser = next(r for r in results if r.returncode == 1)
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
