"""``xdsctl config``: contexts, named ways to reach a control plane (``contexts``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from xds_server.cli import contexts, render
from xds_server.cli.client import EXIT_USAGE
from xds_server.cli.flags import address
from xds_server.cli.options import Commands, group
from xds_server.errors import CliError, InvalidRequest
from xds_server.model.names import validate_dns_label


def set_context(args: argparse.Namespace) -> int:
    """Add or replace context NAME; the first one added becomes the current one."""
    try:
        validate_dns_label("context name", args.name)
    except InvalidRequest as error:
        raise CliError(str(error), EXIT_USAGE) from None
    if (args.cert is None) != (args.key is None):
        raise CliError("give --cert and --key together (or neither)", EXIT_USAGE)
    settings = {"server": args.server}
    for flag in ("token_file", "ca", "cert", "key"):
        value = getattr(args, flag)
        if value is not None:
            path = Path(value).expanduser()
            if not path.is_file():
                raise CliError(f"--{flag.replace('_', '-')} {value}: no such file", EXIT_USAGE)
            settings[flag.replace("_", "-")] = str(path.resolve())
    config = contexts.load()
    config.contexts[args.name] = settings
    config.current = config.current or args.name
    path = contexts.save(config)
    current = " (current)" if config.current == args.name else ""
    print(f"context {args.name}{current} set in {path}")
    return 0


def use_context(args: argparse.Namespace) -> int:
    config = contexts.load()
    contexts.named(config, args.name)
    config.current = args.name
    contexts.save(config)
    print(f"now using context {args.name}")
    return 0


def get_contexts(args: argparse.Namespace) -> int:
    config = contexts.load()
    if args.output not in render.TABLES:
        data = {"current": config.current, "contexts": config.contexts}
        print(render.structured(data, args.output), end="")
        return 0
    rows = [
        (
            "*" if name == config.current else "",
            name,
            values.get("server", "-"),
            values.get("token-file", "-"),
            "yes" if "ca" in values else "no",
        )
        for name, values in sorted(config.contexts.items())
    ]
    print(render.table(("CURRENT", "NAME", "SERVER", "TOKEN FILE", "TLS"), rows), end="")
    return 0


def register(commands: Commands) -> None:
    """Add ``config`` and its subcommands (local: they read and write the config file)."""
    config = group(commands, "config", "contexts: named ways to reach a control plane")
    setting = config.add_parser(
        "set-context", help="add or replace a context", description="Add or replace a context."
    )
    setting.add_argument("name")
    setting.add_argument("--server", required=True, type=address, metavar="HOST:PORT")
    setting.add_argument("--token-file", metavar="FILE", help="file holding the API token")
    setting.add_argument("--ca", metavar="FILE", help="CA certificate (PEM): turns TLS on")
    setting.add_argument("--cert", metavar="FILE", help="client certificate (PEM) for mTLS")
    setting.add_argument("--key", metavar="FILE", help="its private key (PEM)")
    setting.set_defaults(local=set_context)
    using = config.add_parser("use-context", help="make a context the current one")
    using.add_argument("name")
    using.set_defaults(local=use_context)
    listing = config.add_parser("get-contexts", help="list the contexts (* is the current)")
    listing.add_argument("-o", "--output", choices=render.READ_OUTPUTS, default="table")
    listing.set_defaults(local=get_contexts)
