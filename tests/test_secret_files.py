"""Files that hold secrets: a token written for the owner only, a warning (naming
`chmod 600`) for a token or key file others can read."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.support.processes import XDSCTL, ServerProcess


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tokens_go_to_files_readable_by_their_owner_only(
    server: ServerProcess, tmp_path: Path
) -> None:
    target = tmp_path / "admin.token"
    target.write_text("old\n")
    target.chmod(0o644)  # an existing, shared file is narrowed, not trusted
    created = server.xdsctl(
        "tokens", "create", "--name", "admin", "--role", "admin", "--output-file", str(target)
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout == ""
    assert f"written to {target} (mode 0600)" in created.stderr
    assert _mode(target) == 0o600
    token = target.read_text().strip()
    assert token.startswith("xdst_")
    server.token = token
    assert server.xdsctl("tokens", "list").returncode == 0


def test_a_shared_token_file_gets_a_warning(server: ServerProcess, tmp_path: Path) -> None:
    token_file = tmp_path / "ci.token"
    created = server.xdsctl(
        "tokens", "create", "--name", "admin", "--role", "admin", "--output-file", str(token_file)
    )
    assert created.returncode == 0
    token_file.chmod(0o640)
    used = server.xdsctl("status", env={"XDSCTL_TOKEN_FILE": str(token_file)})
    assert used.returncode == 0, used.stderr
    assert f"--token-file {token_file} can be read by others (mode 0640)" in used.stderr
    assert f"chmod 600 {token_file}" in used.stderr
    token_file.chmod(0o600)
    quiet = server.xdsctl("status", env={"XDSCTL_TOKEN_FILE": str(token_file)})
    assert quiet.returncode == 0 and "warning" not in quiet.stderr


def test_a_token_redirected_to_a_shared_file_gets_a_warning(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The documented `tokens create ... > admin.token` used to leave a 0644 file silently."""
    target = tmp_path / "admin.token"
    with target.open("w") as out:
        os.chmod(target, 0o644)
        completed = subprocess.run(
            [*XDSCTL, "tokens", "create", "--name", "admin", "--role", "admin"],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "XDSCTL_SERVER": server.address},
        )
    assert completed.returncode == 0
    assert "went to a file others can read (mode 0644)" in completed.stderr
    assert "--output-file" in completed.stderr
