"""``xdsctl bootstrap``: print the Envoy bootstrap that points an Envoy at this server."""

from __future__ import annotations

import argparse
import sys

from xds_server.bootstrap import BootstrapOptions, bootstrap
from xds_server.cli import render
from xds_server.cli.client import EXIT_OK, EXIT_USAGE
from xds_server.cli.flags import duration
from xds_server.cli.options import Commands
from xds_server.errors import CliError, InvalidRequest
from xds_server.xds import keepalive


def print_bootstrap(args: argparse.Namespace) -> int:
    """Write the bootstrap YAML to stdout; flags it refuses are a usage error."""
    options = BootstrapOptions(
        node_id=args.node_id,
        node_cluster=args.node_cluster,
        xds=args.xds,
        admin=args.admin,
        delta=args.delta,
        keepalive_interval_s=(
            None if args.keepalive_interval is None else int(args.keepalive_interval)
        ),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        ca=args.ca,
        server_name=args.server_name,
        metrics=not args.no_metrics,
        reconnect_max_s=args.reconnect_max,
    )
    try:
        document = bootstrap(options)
    except InvalidRequest as error:
        raise CliError(str(error), EXIT_USAGE) from error
    sys.stdout.write(render.bootstrap(document))
    return EXIT_OK


def register(commands: Commands) -> None:
    """Add ``bootstrap`` to ``commands``."""
    parser = commands.add_parser("bootstrap", help="print an Envoy bootstrap for this server")
    parser.set_defaults(local=print_bootstrap)
    plain = BootstrapOptions()
    parser.add_argument(
        "--node-id",
        default=plain.node_id,
        help=f"this Envoy's node id, unique per Envoy (default {plain.node_id})",
    )
    parser.add_argument(
        "--node-cluster",
        default=plain.node_cluster,
        help=f"node cluster (default {plain.node_cluster})",
    )
    parser.add_argument(
        "--xds",
        default=plain.xds,
        metavar="HOST:PORT[,HOST:PORT...]",
        help=f"the control plane's xDS address, or every replica's (default {plain.xds})",
    )
    parser.add_argument(
        "--admin",
        default=plain.admin,
        metavar="HOST:PORT",
        help=f"Envoy's admin address (default {plain.admin})",
    )
    _connection_options(parser)


def _connection_options(parser: argparse.ArgumentParser) -> None:
    """How the Envoy talks to the control plane: delta or not, keepalive, mTLS."""
    parser.add_argument("--delta", action="store_true", help="use delta xDS (DELTA_GRPC)")
    parser.add_argument(
        "--no-metrics",
        action="store_true",
        help="leave out the stats sink that streams Envoy's traffic figures to the "
        "control plane (`xdsctl metrics`)",
    )
    parser.add_argument(
        "--keepalive-interval",
        type=duration(3600, whole=True),  # 0 reaches the bootstrap's own "at least 1s"
        default=None,
        metavar="DURATION",
        help=f"HTTP/2 keepalive to the control plane (default {keepalive.PING_INTERVAL_S}s; "
        f"{keepalive.FAILOVER_PING_INTERVAL_S}s with several replicas, timeout "
        f"{keepalive.FAILOVER_PING_TIMEOUT_S}s)",
    )
    parser.add_argument(
        "--reconnect-max",
        type=duration(300),
        default=None,
        metavar="DURATION",
        help="the longest Envoy waits between attempts to reach the control plane "
        "(default Envoy's: from 0.5s doubling to 30s, with jitter); shorter brings a "
        "waiting Envoy sooner, at the cost of more attempts from the fleet while it is down",
    )
    for flag, what in (
        ("--tls-cert", "this Envoy's client certificate (PEM path as Envoy sees it)"),
        ("--tls-key", "its private key (PEM path)"),
        ("--ca", "the CA that signed the control plane's certificate (PEM path)"),
        ("--server-name", "the DNS name in the control plane's certificate (SNI and SAN match)"),
    ):
        parser.add_argument(flag, metavar="FILE" if flag != "--server-name" else "NAME", help=what)
