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

from tests.support.processes import XDSCTL, free_port, run_xdsctl
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
    assert "--endpoint HOST:PORT" in pages["xdsctl apply"].split("options:")[0]
    assert "[--endpoint" not in pages["xdsctl apply"].split("options:")[0]
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
