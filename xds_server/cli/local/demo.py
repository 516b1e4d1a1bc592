"""``xdsctl demo``: the control plane, an Envoy and two upstreams, all on loopback."""

from __future__ import annotations

import argparse

from xds_server.cli.client import EXIT_OK, EXIT_REFUSED
from xds_server.cli.flags import address, whole_number
from xds_server.cli.options import Commands
from xds_server.config import ServeConfig
from xds_server.errors import CliError, DemoError


def demo(args: argparse.Namespace) -> int:
    """Run the demo until it is stopped; what keeps it from starting exits 1."""
    # Imported when it runs: no other command needs the demo's machinery.
    from xds_server.demo import DemoOptions, run_demo

    options = DemoOptions(
        listen_port=args.listen_port,
        admin_port=args.admin_port,
        api_listen=args.api_listen,
        xds_listen=args.xds_listen,
    )
    try:
        run_demo(options)
    except DemoError as error:
        raise CliError(str(error), EXIT_REFUSED) from error
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add ``demo`` to ``commands``."""
    defaults = ServeConfig()
    parser = commands.add_parser(
        "demo", help="run the control plane, Envoy and two upstreams on loopback"
    )
    parser.set_defaults(local=demo)
    port = whole_number(1, 65535)
    parser.add_argument(
        "--listen-port", type=port, default=10000, help="Envoy's HTTP port (default 10000)"
    )
    parser.add_argument(
        "--admin-port", type=port, default=9901, help="Envoy's admin port (default 9901)"
    )
    for flag, default in (
        ("--api-listen", defaults.api_listen),
        ("--xds-listen", defaults.xds_listen),
    ):
        parser.add_argument(flag, default=default, type=address, metavar="HOST:PORT")
