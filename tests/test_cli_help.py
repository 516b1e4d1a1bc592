"""Every help page as people read it: no %% or 1.67772e+07, required options shown as
required, and a mistyped command answered with the one meant."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

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
