"""``xdsctl serve``: run the control plane in this process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xds_server.cli.client import EXIT_OK, EXIT_REFUSED
from xds_server.cli.flags import address, parse_duration, positive
from xds_server.cli.local.serve_config import LIMIT_SETTINGS, serve_config
from xds_server.cli.options import Commands
from xds_server.config import ServeConfig
from xds_server.errors import CliError, XdsServerError
from xds_server.redaction import one_line


def serve(args: argparse.Namespace) -> int:
    """Check the flags, then serve until stopped; an error is one line and an exit code."""
    # Imported here so that client commands start fast without the server's stack.
    import asyncio

    from xds_server.logs import configure_logging
    from xds_server.server import serve as run_server

    try:
        config = serve_config(args)
    except CliError as error:
        print(f"xdsctl serve: error: {one_line(str(error))}", file=sys.stderr)
        return error.exit_code
    configure_logging(args.log_level)
    try:
        asyncio.run(run_server(config))
    except (XdsServerError, OSError) as error:
        print(f"xdsctl serve: error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add ``serve`` to ``commands``."""
    defaults = ServeConfig()
    parser = commands.add_parser("serve", help="run the control plane")
    parser.set_defaults(local=serve)
    for flag, default, what in (
        ("--api-listen", defaults.api_listen, "operator API address"),
        ("--xds-listen", defaults.xds_listen, "ADS (xDS) address for Envoy"),
        ("--envoy-listen", defaults.envoy_listen, "address of the HTTP listener Envoy opens"),
        ("--metrics-listen", defaults.metrics_listen, "/metrics, /healthz and /readyz"),
    ):
        parser.add_argument(
            flag,
            default=default,
            type=address,
            metavar="HOST:PORT",
            help=f"{what} (default {default})",
        )
    _store_options(parser, defaults)
    parser.add_argument(
        "--node-grace",
        type=parse_duration,
        default=defaults.node_grace_seconds,
        metavar="DURATION",
        help="how long a disconnected Envoy stays in `xdsctl status` (default 60s)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    _tls_options(parser)
    _limit_options(parser, defaults)


def _store_options(parser: argparse.ArgumentParser, defaults: ServeConfig) -> None:
    """Where the state is kept: a SQLite file, or PostgreSQL shared by replicas."""
    store = parser.add_mutually_exclusive_group()
    store.add_argument(
        "--state",
        default=defaults.state_path,
        type=Path,
        metavar="FILE",
        help=f"SQLite state file (default {defaults.state_path})",
    )
    store.add_argument(
        "--store",
        metavar="postgresql://[USER@]HOST:PORT/DB",
        help="PostgreSQL database shared by several replicas, instead of --state; "
        "no password in it: use --store-password-file or libpq's PGPASSWORD, ~/.pgpass",
    )
    parser.add_argument(
        "--store-password-file",
        type=Path,
        metavar="FILE",
        help="file holding the database password (mode 0600), for --store",
    )


def _tls_options(parser: argparse.ArgumentParser) -> None:
    """TLS and authentication of both ports (docs/security.md)."""
    for port, what in (("api", "the operator API"), ("xds", "the xDS port")):
        parser.add_argument(
            f"--{port}-tls-cert", type=Path, metavar="FILE", help=f"TLS certificate (PEM) of {what}"
        )
        parser.add_argument(
            f"--{port}-tls-key", type=Path, metavar="FILE", help="its private key (PEM)"
        )
        parser.add_argument(
            f"--{port}-client-ca",
            type=Path,
            metavar="FILE",
            help=f"require client certificates signed by this CA on {what} (mTLS)"
            + ("; a node's id must match its certificate" if port == "xds" else ""),
        )
    parser.add_argument(
        "--api-cert-role",
        action="append",
        default=[],
        metavar="SUBJECT=ROLE",
        help="give a client certificate's subject a role (repeatable), "
        "e.g. 'CN=alice,O=ops=operator'",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow the operator API on a non-loopback address without TLS and authentication",
    )


def _number(value: float) -> str:
    """A default as people read it: 16777216, not 1.67772e+07; 0.5 stays 0.5."""
    return f"{value:,.0f}".replace(",", "") if value == int(value) else f"{value:g}"


def _limit_options(parser: argparse.ArgumentParser, defaults: ServeConfig) -> None:
    """One flag per limit in ``LIMIT_SETTINGS``, defaulting to ServeConfig's (docs/security.md)."""
    for name, what in LIMIT_SETTINGS.items():
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=positive(type(default)),
            default=default,
            metavar="N",
            help=f"{what} (default {_number(default)})",
        )
