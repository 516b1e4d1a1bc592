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
    from xds_server.demo import demo_options, run_demo

    options = demo_options(
        args.port_base,
        listen_port=args.listen_port,
        admin_port=args.admin_port,
        api_listen=args.api_listen,
        xds_listen=args.xds_listen,
        metrics_listen=args.metrics_listen,
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
        "demo",
        help="run the control plane, Envoy and two upstreams on loopback",
        description="Run the control plane, a real Envoy and two upstreams on loopback. "
        "A default port that is taken is replaced by a free one (the demo prints which); "
        "--port-base N puts them all at N (xDS), N+1 (API), N+2 (Envoy), N+3 (Envoy "
        "admin), N+4 (metrics). The logs are kept, and the demo says where.",
    )
    parser.set_defaults(local=demo)
    port = whole_number(1, 65535)
    parser.add_argument(
        "--port-base", type=whole_number(1, 65531), metavar="N", help="use ports N to N+4"
    )
    parser.add_argument("--listen-port", type=port, help="Envoy's HTTP port (default 10000)")
    parser.add_argument("--admin-port", type=port, help="Envoy's admin port (default 9901)")
    for flag, default in (
        ("--api-listen", defaults.api_listen),
        ("--xds-listen", defaults.xds_listen),
        ("--metrics-listen", defaults.metrics_listen),
    ):
        parser.add_argument(flag, type=address, metavar="HOST:PORT", help=f"(default {default})")
