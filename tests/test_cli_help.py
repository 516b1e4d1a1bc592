"""Every help page as people read it: no %% or 1.67772e+07, required options shown as
required, and a mistyped command answered with the one meant."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import XDSCTL, ServerProcess, free_port, run_xdsctl
from xds_server import __version__
from xds_server.cli import main as cli


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_help_pages_read_as_written() -> None:
    pages = {p.prog: p.format_help() for p in _parsers(cli.build_parser())}
    assert len(pages) > 40
    for prog, page in pages.items():
        assert "%%" not in page, prog
        assert not re.search(r"\d\.\d+e\+\d\d", page), prog
    usage = " ".join(pages["xdsctl apply"].split("options:")[0].split())
    assert "--endpoint HOST:PORT" in usage and "[--endpoint" not in usage
    assert "send 100% to the other tag" in pages["xdsctl traffic promote"]


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["trafic", "get"], "did you mean traffic?"),
        (["traffic", "promte"], "did you mean promote?"),
        (["deployment", "list"], "did you mean deployments?"),
    ],
)
def test_a_mistyped_command_gets_the_one_meant(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert hint in err and len(err.splitlines()) == 1


def _complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell's completion script gets back for ``line`` (argcomplete's protocol)."""
    out = tmp_path / "completions"
    env = {
        **os.environ,
        "_ARGCOMPLETE": "1",
        "_ARGCOMPLETE_IFS": "\n",
        "COMP_LINE": line,
        "COMP_POINT": str(len(line)),
        "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
    }
    subprocess.run([*XDSCTL], env=env, check=True, timeout=30, stdin=subprocess.DEVNULL)
    return [word.strip() for word in out.read_text().split("\n")]


def test_completion_scripts_and_what_they_complete(tmp_path: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        script = run_xdsctl("completion", shell)
        assert (
            script.returncode == 0 and "xdsctl" in script.stdout and "_ARGCOMPLETE" in script.stdout
        )
    assert "traffic" in _complete("xdsctl traf", tmp_path)
    assert _complete("xdsctl traffic prom", tmp_path) == ["promote"]
    assert "--bluegreen" in _complete("xdsctl apply --blue", tmp_path)
    refused = run_xdsctl("completion", "powershell")
    assert refused.returncode == 2 and "invalid choice: 'powershell'" in refused.stderr


def test_version_without_a_server() -> None:
    plain = run_xdsctl("--version")
    assert plain.returncode == 0 and plain.stdout == f"xdsctl {__version__}\n"
    alone = run_xdsctl("version", "-o", "json", env={"XDSCTL_SERVER": f"127.0.0.1:{free_port()}"})
    assert alone.returncode == 3 and alone.json() == {"client": __version__, "server": None}


def test_contexts_and_their_precedence(tmp_path: Path, server: ServerProcess) -> None:
    """set-context, use-context, get-contexts; then flag > environment > context."""
    server_address = server.address
    env = {"XDG_CONFIG_HOME": str(tmp_path), "XDSCTL_SERVER": ""}
    token = tmp_path / "token"
    made = server.xdsctl(
        "tokens", "create", "--name", "admin", "--role", "admin", "--output-file", str(token)
    )
    assert made.returncode == 0, made.stderr
    added = run_xdsctl(
        "config",
        "set-context",
        "local",
        "--server",
        server_address,
        "--token-file",
        str(token),
        env=env,
    )
    assert added.returncode == 0 and "context local (current) set in" in added.stdout
    config = tmp_path / "xdsctl" / "config.yaml"
    assert (config.stat().st_mode & 0o777) == 0o600 and "xdst_" not in config.read_text()
    nowhere = f"127.0.0.1:{free_port()}"
    far = ("config", "set-context", "far", "--server", nowhere, "--token-file", str(token))
    assert run_xdsctl(*far, env=env).returncode == 0
    listed = run_xdsctl("config", "get-contexts", "-o", "json", env=env).json()
    assert listed["current"] == "local" and set(listed["contexts"]) == {"local", "far"}

    # The current context reaches the server, with its token file.
    assert run_xdsctl("version", env=env).returncode == 0
    assert run_xdsctl("tokens", "list", env=env).returncode == 0
    # A token in the environment wins over the context's file.
    bogus = {**env, "XDSCTL_TOKEN": "xdst_" + "B" * 43}
    assert run_xdsctl("tokens", "list", env=bogus).returncode == 5
    # XDSCTL_CONTEXT, then --context, win over the current one; --server over all.
    assert run_xdsctl("version", env={**env, "XDSCTL_CONTEXT": "far"}).returncode == 3
    assert run_xdsctl("--context", "far", "version", env=env).returncode == 3
    reached = run_xdsctl("--context", "far", "--server", server_address, "version", env=env)
    assert reached.returncode == 0
    assert run_xdsctl("version", env={**env, "XDSCTL_SERVER": nowhere}).returncode == 3
    assert run_xdsctl("config", "use-context", "far", env=env).returncode == 0
    assert run_xdsctl("version", env=env).returncode == 3

    unknown = run_xdsctl("--context", "lcoal", "version", env=env)
    assert unknown.returncode == 2 and "no context named lcoal" in unknown.stderr
    assert "did you mean local?" in unknown.stderr
    assert run_xdsctl("config", "use-context", "nope", env=env).returncode == 2
    before = config.read_text()
    for args, message in (
        (("--server", "nowhere"), "has no port"),
        (("--server", server_address, "--token-file", "/nonexistent"), "no such file"),
        (("--server", server_address, "--cert", str(token)), "give --cert and --key together"),
    ):
        refused = run_xdsctl("config", "set-context", "bad", *args, env=env)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    refused = run_xdsctl("config", "set-context", "Bad_Name", "--server", nowhere, env=env)
    assert refused.returncode == 2 and "context name 'Bad_Name' is not valid" in refused.stderr
    assert config.read_text() == before  # nothing written
    config.write_bytes(b"\x00\xff")
    broken = run_xdsctl("config", "get-contexts", env=env)
    assert broken.returncode == 2 and "is not UTF-8 text" in broken.stderr
    config.write_text("contexts: [1, 2]\n")
    broken = run_xdsctl("version", env=env)
    assert broken.returncode == 2 and "is not an xdsctl config" in broken.stderr
