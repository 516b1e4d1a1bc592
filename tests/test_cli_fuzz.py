"""No tracebacks, ever: whatever the command line, xdsctl ends with one error line and
exit 1, 2, 3 or 6 (or 0). Property-based, over every command's flags and the values
people mistype: huge numbers, empty strings, other scripts' digits, odd addresses."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.processes import free_port
from xds_server.cli import main as cli

ODD = [
    "",
    " ",
    "-",
    "--",
    "-1",
    "0",
    "1",
    "100",
    "+100",
    "050",
    "\u0661\u0660\u0660",  # Arabic-Indic 100
    "\uff11\uff10\uff10",  # fullwidth 100
    "\u00b2",  # superscript two
    "99999999999999999999",
    "9" * 5000,
    "1e3",
    "nan",
    "inf",
    "0x10",
    "1.5",
    "30s",
    "1h30m",
    "127.0.0.1",
    ":80",
    ":47451",
    "[::1]",
    "[::1]:80",
    "::1:80",
    "http://127.0.0.1:1",
    "127.0.0.1:99999",
    "127.0.0.1:0",
    "blue",
    "blue=100",
    "blue=-10",
    "blue=\u0661\u0660\u0660",
    "blue=4294967396",
    "blue=90,,green=10",
    "green=5.125",
    "a=b",
    "xdst_" + "A" * 43,
    "a" * 300,
    "postgresql://u:pw@h:port/db",
    "postgresql://u@h/db",
    "/nonexistent/dir/x",
    "/",
]
_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)
VALUES = st.one_of(st.sampled_from(ODD), _text, st.integers().map(str))

# Each command and the flags it takes (None: a positional argument).
COMMANDS: dict[tuple[str, ...], tuple[str | None, ...]] = {
    ("apply",): ("--endpoint", "--label", "--deployment-tag", "--if-revision", "--timeout"),
    ("traffic", "set"): ("--tags", "--mirror", "--if-revision", "--timeout", "--min-envoys"),
    ("traffic", "get"): ("--service", "-o"),
    ("traffic", "promote"): ("--to", "--if-revision", "--service"),
    ("traffic", "rollback"): ("--to-revision", "--if-revision"),
    ("traffic", "history"): ("--limit", "-o"),
    ("deployments", "list"): ("--service", "-o"),
    ("deployments", "get"): (None, "-o"),
    ("deployments", "set-endpoints"): (None, "--endpoint"),
    ("deployments", "delete"): (None,),
    ("services", "set"): (None, "--domain"),
    ("services", "list"): ("-o",),
    ("status",): ("-o",),
    ("state", "import"): (None, "-o"),
    ("tokens", "create"): ("--name", "--role", "--output-file"),
    ("tokens", "revoke"): (None, "--dry-run"),
    ("hooks", "add"): (None, "--url", "--exec", "--events", "--timeout", "--secret-file"),
    ("hooks", "deliveries"): (None, "--limit", "-o"),
    ("config", "set-context"): (None, "--server", "--token-file", "--ca", "--cert", "--key"),
    ("config", "use-context"): (None,),
    ("config", "get-contexts"): ("-o",),
    ("completion",): (None,),
    ("version",): ("-o", "--context"),
    ("bootstrap",): ("--node-id", "--xds", "--admin", "--keepalive-interval", "--tls-cert"),
    ("serve",): (
        "--api-listen",
        "--xds-listen",
        "--envoy-listen",
        "--metrics-listen",
        "--state",
        "--store",
        "--store-password-file",
        "--node-grace",
        "--api-write-rate",
        "--api-max-message-bytes",
    ),
    ("demo",): ("--listen-port", "--admin-port", "--api-listen"),
}
SERVERS = ["127.0.0.1", "http://127.0.0.1:1", "127.0.0.1:99999", "", "[::1]", "xdst_" + "B" * 43]


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(sorted(COMMANDS)))
    argv = list(command)
    for flag in draw(st.lists(st.sampled_from(COMMANDS[command]), max_size=4)):
        argv += [draw(VALUES)] if flag is None else [flag, draw(VALUES)]
    if draw(st.booleans()):
        argv += ["--server", draw(st.sampled_from(SERVERS))]
    if draw(st.integers(0, 9)) == 0:
        argv.append(draw(VALUES))  # a stray word
    return argv


@pytest.fixture
def no_servers(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """`serve` and `demo` check their flags but start nothing; every client call goes to
    a port where nothing listens (fails fast: exit 3)."""

    async def serve(_config: Any) -> None:
        return None

    monkeypatch.setattr("xds_server.server.serve", serve)
    monkeypatch.setattr("xds_server.logs.configure_logging", lambda *_a, **_k: None)
    monkeypatch.setattr("xds_server.demo.run_demo", lambda _options: None)
    monkeypatch.setenv("XDSCTL_SERVER", f"127.0.0.1:{free_port()}")
    # `config set-context` writes: into a folder of this test's, never the user's.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))
    for name in ("XDSCTL_TOKEN", "XDSCTL_TOKEN_FILE", "XDSCTL_CA", "XDSCTL_REQUEST_ID"):
        monkeypatch.delenv(name, raising=False)


def _exit_code(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as done:  # argparse: --help (0) and usage errors (2)
        return int(done.code or 0)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=command_lines())
def test_any_command_line_ends_in_one_error_line(
    no_servers: None, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code = _exit_code(argv)
    _out, err = capsys.readouterr()
    assert code in (0, 1, 2, 3, 6), (argv, err)
    assert "Traceback" not in err
    if code != 0:
        lines = [line for line in err.splitlines() if not line.startswith("xdsctl: warning:")]
        assert len(lines) == 1 and "error" in lines[0], (argv, err)
        assert "xdst_" + "A" * 43 not in err and "xdst_" + "B" * 43 not in err  # redacted
        assert ":pw@" not in err  # the sample URL's password


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["traffic", "set", "--tags", "blue=4294967396"], 2, "must be from 0 to 100"),
        (["traffic", "set", "--tags", "blue=\u0661\u0660\u0660"], 2, "plain digits"),
        (["traffic", "set", "--tags", "blue=+100"], 2, "no sign or leading zero"),
        (
            ["traffic", "set", "--tags", "blue=100", "--if-revision", "99999999999999999999"],
            2,
            "must be from 0 to",
        ),
        (["traffic", "rollback", "--to-revision", "-1"], 2, "not a whole number"),
        (["serve", "--api-listen", ":47451"], 2, "has no host"),
        (["serve", "--state", "/x", "--store", "postgresql://u@h/db"], 2, "not allowed with"),
        (["serve", "--store", "postgresql://u:hunter2@h/db"], 2, "holds a password"),
        (["serve", "--store", "postgresql://u@h:port/db"], 2, "is malformed"),
        (["serve", "--api-write-rate", "nan"], 2, "is not a number"),
        (["demo", "--listen-port", "70000"], 2, "must be from 1 to 65535"),
        # A host alone dials the API's port (nothing listens there in this test).
        (["traffic", "get", "--server", "127.0.0.1"], 3, "the xds_server at 127.0.0.1:18001"),
        (["traffic", "get", "--server", "[::1]"], 3, "the xds_server at [::1]:18001"),
        (["traffic", "get", "--server", "http://127.0.0.1:1"], 2, "is a URL: give HOST:PORT"),
        (["traffic", "get", "--server", "::1"], 2, "is not HOST:PORT"),
        (["traffic", "get", "-o", "xdst_" + "C" * 43], 2, "invalid choice: 'xdst_<redacted>'"),
    ],
)
def test_known_mistakes(
    no_servers: None, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    """The cases the issue found, each a one-line usage error naming the fix."""
    got = _exit_code(argv)
    err = capsys.readouterr().err
    assert got == code, err
    assert message in err and len(err.splitlines()) == 1
    assert "hunter2" not in err and "C" * 43 not in err
