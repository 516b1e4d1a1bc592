"""``xdsctl completion bash|zsh|fish``: the shell script that completes xdsctl.

argcomplete writes it; completing then asks xdsctl itself (``autocomplete`` in
``main``), so every command, flag and choice completes as the parser knows them.
"""

from __future__ import annotations

import argparse

import argcomplete

from xds_server.cli.options import Commands

SHELLS = ("bash", "zsh", "fish")


def completion(args: argparse.Namespace) -> int:
    """Print the script; source it (``source <(xdsctl completion bash)``) or install it."""
    print(argcomplete.shellcode(["xdsctl"], shell=args.shell), end="")
    return 0


def register(commands: Commands) -> None:
    """Add ``completion`` to ``commands`` (a local command: it calls no server)."""
    parser = commands.add_parser(
        "completion",
        help="print a shell completion script (bash, zsh or fish)",
        description="Print a completion script: `source <(xdsctl completion bash)`, "
        "`xdsctl completion zsh > ~/.zfunc/_xdsctl`, or "
        "`xdsctl completion fish > ~/.config/fish/completions/xdsctl.fish`.",
    )
    parser.add_argument("shell", choices=SHELLS)
    parser.set_defaults(local=completion)
