"""Test modules share helpers through tests/support/ and conftest, never by importing
one another (a test module's helpers then change under its neighbours' feet)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_another() -> None:
    found = []
    for path in sorted(TESTS.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found += [
                f"{path.name} imports {n}"
                for n in names
                if n.startswith(("tests.test_", "tests.conftest", "test_", "conftest"))
            ]
    assert found == []
