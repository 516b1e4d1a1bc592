"""The client commands start with the API client only: none of the server's stack."""

from __future__ import annotations

import subprocess
import sys

CLIENT_COMMANDS = (
    "apply",
    "deployments",
    "hooks",
    "services",
    "state",
    "status",
    "tokens",
    "traffic",
)
# What only `xdsctl serve` (and the demo that runs it) needs.
SERVER_STACK = (
    "xds_server.server",
    "xds_server.store",
    "xds_server.xds",
    "xds_server.translate",
    "xds_server.api.servicer",
    "xds_server.replication",
    "psycopg",
)
# Constants both sides share (bootstrap's HTTP/2 keepalive): no code, no start-up cost.
SHARED = ("xds_server.xds", "xds_server.xds.keepalive")


def test_client_commands_import_no_server_stack() -> None:
    # The entry point too: it builds every parser, the local commands' included.
    modules = ["main", *(f"commands.{name}" for name in CLIENT_COMMANDS)]
    imports = "".join(f"import xds_server.cli.{module}\n" for module in modules)
    # A fresh interpreter: this one has imported the server for other tests.
    done = subprocess.run(
        [sys.executable, "-c", imports + "import sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = done.stdout.split()
    assert [
        module
        for module in loaded
        if module not in SHARED
        and any(module == part or module.startswith(part + ".") for part in SERVER_STACK)
    ] == []
