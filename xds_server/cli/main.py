"""``xdsctl``: the operator's command line, a thin client of the operator API.

Exit codes: 0 done; 1 refused by the server, nothing changed; 2 usage error,
nothing changed; 3 server unreachable; 4 committed but not yet confirmed on
every Envoy (``--wait``); 5 not authenticated or not allowed (the message
names the role needed), nothing changed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from xds_server.auth.roles import Role, parse_role
from xds_server.bootstrap import BootstrapOptions, bootstrap
from xds_server.cli import render
from xds_server.cli.client import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CliError, OperatorClient
from xds_server.cli.commands import apply, deployments, services, state, status, tokens, traffic
from xds_server.cli.flags import (
    OneLineParser,
    address,
    parse_duration,
    positive,
    whole_number,
)
from xds_server.cli.options import connection_options, credentials, parsed, server
from xds_server.cli.secret_files import read_secret, warn_if_shared
from xds_server.cli.wait import wait_for_envoys
from xds_server.config import ServeConfig, TlsFiles
from xds_server.errors import InvalidRequest, XdsServerError
from xds_server.redaction import one_line, redact
from xds_server.xds import keepalive


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: each command module adds its own subcommands."""
    parser = OneLineParser(
        prog="xdsctl",
        description="Blue-green, canary and mirrored releases on Envoy, from the command line.",
    )
    connection_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_local_commands(commands)
    # In the order `xdsctl --help` lists them.
    for module in (apply, traffic, deployments, status, services, state, tokens):
        module.register(commands)
    return parser


# ServeConfig's limits, each a `serve` flag of the same name (--api-write-rate, ...).
LIMIT_SETTINGS = {
    "api_max_message_bytes": "largest operator API request (state import documents)",
    "xds_max_message_bytes": "largest xDS request (an Envoy's are a few KB)",
    "api_max_calls_per_connection": "operator API calls in flight on one connection",
    "api_max_calls_per_peer": "operator API calls in flight from one address",
    "api_max_calls_per_identity": "operator API calls in flight per token or certificate",
    "api_write_rate": "writes per second per identity, after the burst",
    "api_write_burst": "writes an identity may make at once",
    "xds_max_streams_per_connection": "ADS streams on one connection",
    "xds_max_streams_per_peer": "ADS streams from one address",
    "xds_max_streams_per_identity": "ADS streams per node (its certificate with mTLS, or node id)",
}


def parse_cert_role(text: str) -> tuple[str, Role]:
    """``SUBJECT=ROLE``; the subject has ``=`` of its own (``CN=alice,O=ops=operator``)."""
    subject, _, role = text.rpartition("=")
    if not subject or "=" not in subject:
        raise InvalidRequest(
            f"--api-cert-role {text!r} is not SUBJECT=ROLE: write e.g. 'CN=alice,O=ops=operator' "
            "(the subject as `openssl x509 -noout -subject -nameopt RFC2253` prints it)"
        )
    return subject, parse_role(role)


def _tls_files(args: argparse.Namespace, port: str) -> TlsFiles | None:
    cert, key, ca = (
        getattr(args, f"{port}_{name}") for name in ("tls_cert", "tls_key", "client_ca")
    )
    if cert is None and key is None:
        if ca is not None:
            raise CliError(
                f"--{port}-client-ca needs --{port}-tls-cert and --{port}-tls-key", EXIT_USAGE
            )
        return None
    if cert is None or key is None:
        raise CliError(f"give --{port}-tls-cert and --{port}-tls-key together", EXIT_USAGE)
    return TlsFiles(cert=cert, key=key, client_ca=ca)


def _store_url(url: str) -> str:
    """A ``--store`` URL this server can use: PostgreSQL, well formed, no password."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise CliError(
            "--store takes a postgresql://HOST:PORT/DB URL; for a SQLite file use --state FILE",
            EXIT_USAGE,
        )
    import psycopg  # here: client commands start without the database driver

    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for a port that is no number
        settings = psycopg.conninfo.conninfo_to_dict(url)
    except (ValueError, psycopg.Error) as error:
        raise CliError(
            f"the --store URL {redact(url)!r} is malformed ({redact(str(error))}): "
            "write postgresql://USER@HOST:PORT/DB",
            EXIT_USAGE,
        ) from None
    # As libpq reads it: user:password@ and ?password= alike.
    if "password" in settings:
        raise CliError(
            "the --store URL holds a password, and every user of this machine can read a "
            "command line (`ps`): take it out of the URL and give it with "
            "--store-password-file FILE (mode 0600), PGPASSWORD or ~/.pgpass",
            EXIT_USAGE,
        )
    return url


def serve_config(args: argparse.Namespace) -> ServeConfig:
    """``xdsctl serve``'s settings from its flags, checked; ``CliError`` (exit 2) if not."""
    password = None
    if args.store_password_file is not None:
        if args.store is None:
            raise CliError("--store-password-file goes with --store", EXIT_USAGE)
        password = read_secret(args.store_password_file, "--store-password-file")
    for port in ("api", "xds"):
        key = getattr(args, f"{port}_tls_key")
        if key is not None:
            warn_if_shared(key, f"--{port}-tls-key")
    config = ServeConfig(
        state_path=args.state,
        store_url=_store_url(args.store) if args.store is not None else None,
        store_password=password,
        api_listen=args.api_listen,
        xds_listen=args.xds_listen,
        envoy_listen=args.envoy_listen,
        metrics_listen=args.metrics_listen,
        node_grace_seconds=args.node_grace,
        api_tls=_tls_files(args, "api"),
        api_cert_roles=tuple(parsed(parse_cert_role, text) for text in args.api_cert_role),
        xds_tls=_tls_files(args, "xds"),
        insecure=args.insecure,
        **{name: getattr(args, name) for name in LIMIT_SETTINGS},
    )
    if config.api_cert_roles and (config.api_tls is None or config.api_tls.client_ca is None):
        raise CliError(
            "--api-cert-role needs --api-client-ca (and --api-tls-cert/-key)", EXIT_USAGE
        )
    return config


def _serve(args: argparse.Namespace) -> int:
    # Imported here so that client commands start fast without the server's stack.
    import asyncio

    from xds_server.logs import configure_logging
    from xds_server.server import serve

    try:
        config = serve_config(args)
    except CliError as error:
        print(f"xdsctl serve: error: {one_line(str(error))}", file=sys.stderr)
        return error.exit_code
    configure_logging(args.log_level)
    try:
        asyncio.run(serve(config))
    except (XdsServerError, OSError) as error:
        print(f"xdsctl serve: error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_REFUSED
    return EXIT_OK


def _bootstrap(args: argparse.Namespace) -> int:
    options = BootstrapOptions(
        node_id=args.node_id,
        node_cluster=args.node_cluster,
        xds=args.xds,
        admin=args.admin,
        delta=args.delta,
        keepalive_interval_s=args.keepalive_interval,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        ca=args.ca,
        server_name=args.server_name,
    )
    try:
        document = bootstrap(options)
    except InvalidRequest as error:
        raise CliError(str(error), EXIT_USAGE) from error
    sys.stdout.write(render.bootstrap(document))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from xds_server.demo import DemoError, DemoOptions, run_demo

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


def _security_options(serve: argparse.ArgumentParser, defaults: ServeConfig) -> None:
    """TLS, authentication and limits (docs/security.md)."""
    for port, what in (("api", "the operator API"), ("xds", "the xDS port")):
        serve.add_argument(
            f"--{port}-tls-cert", type=Path, metavar="FILE", help=f"TLS certificate (PEM) of {what}"
        )
        serve.add_argument(
            f"--{port}-tls-key", type=Path, metavar="FILE", help="its private key (PEM)"
        )
        serve.add_argument(
            f"--{port}-client-ca",
            type=Path,
            metavar="FILE",
            help=f"require client certificates signed by this CA on {what} (mTLS)"
            + ("; a node's id must match its certificate" if port == "xds" else ""),
        )
    serve.add_argument(
        "--api-cert-role",
        action="append",
        default=[],
        metavar="SUBJECT=ROLE",
        help="give a client certificate's subject a role (repeatable), "
        "e.g. 'CN=alice,O=ops=operator'",
    )
    serve.add_argument(
        "--insecure",
        action="store_true",
        help="allow the operator API on a non-loopback address without TLS and authentication",
    )
    for name, what in LIMIT_SETTINGS.items():
        default = getattr(defaults, name)
        serve.add_argument(
            "--" + name.replace("_", "-"),
            type=positive(type(default)),
            default=default,
            metavar="N",
            help=f"{what} (default {default:g})",
        )


def _add_local_commands(commands: Any) -> None:
    """Commands that run here rather than call the server: serve, bootstrap, demo."""
    defaults = ServeConfig()
    serve = commands.add_parser("serve", help="run the control plane")
    serve.set_defaults(local=_serve)
    for flag, default, what in (
        ("--api-listen", defaults.api_listen, "operator API address"),
        ("--xds-listen", defaults.xds_listen, "ADS (xDS) address for Envoy"),
        ("--envoy-listen", defaults.envoy_listen, "address of the HTTP listener Envoy opens"),
        ("--metrics-listen", defaults.metrics_listen, "/metrics, /healthz and /readyz"),
    ):
        serve.add_argument(
            flag,
            default=default,
            type=address,
            metavar="HOST:PORT",
            help=f"{what} (default {default})",
        )
    store = serve.add_mutually_exclusive_group()
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
    serve.add_argument(
        "--store-password-file",
        type=Path,
        metavar="FILE",
        help="file holding the database password (mode 0600), for --store",
    )
    serve.add_argument(
        "--node-grace",
        type=parse_duration,
        default=defaults.node_grace_seconds,
        metavar="DURATION",
        help="how long a disconnected Envoy stays in `xdsctl status` (default 60s)",
    )
    serve.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    _security_options(serve, defaults)

    demo = commands.add_parser(
        "demo", help="run the control plane, Envoy and two upstreams on loopback"
    )
    demo.set_defaults(local=_demo)
    port = whole_number(1, 65535)
    demo.add_argument(
        "--listen-port", type=port, default=10000, help="Envoy's HTTP port (default 10000)"
    )
    demo.add_argument(
        "--admin-port", type=port, default=9901, help="Envoy's admin port (default 9901)"
    )
    for flag, default in (
        ("--api-listen", defaults.api_listen),
        ("--xds-listen", defaults.xds_listen),
    ):
        demo.add_argument(flag, default=default, type=address, metavar="HOST:PORT")

    boot = commands.add_parser("bootstrap", help="print an Envoy bootstrap for this server")
    boot.set_defaults(local=_bootstrap)
    plain = BootstrapOptions()
    boot.add_argument(
        "--node-id",
        default=plain.node_id,
        help=f"this Envoy's node id, unique per Envoy (default {plain.node_id})",
    )
    boot.add_argument(
        "--node-cluster",
        default=plain.node_cluster,
        help=f"node cluster (default {plain.node_cluster})",
    )
    boot.add_argument(
        "--xds",
        default=plain.xds,
        metavar="HOST:PORT[,HOST:PORT...]",
        help=f"the control plane's xDS address, or every replica's (default {plain.xds})",
    )
    boot.add_argument(
        "--admin",
        default=plain.admin,
        metavar="HOST:PORT",
        help=f"Envoy's admin address (default {plain.admin})",
    )
    boot.add_argument("--delta", action="store_true", help="use delta xDS (DELTA_GRPC)")
    boot.add_argument(
        "--keepalive-interval",
        type=whole_number(0, 3600),  # 0 reaches the bootstrap's own "at least 1s"
        default=None,
        metavar="SECONDS",
        help=f"HTTP/2 keepalive to the control plane (default {keepalive.PING_INTERVAL_S}; "
        f"{keepalive.FAILOVER_PING_INTERVAL_S} with several replicas, timeout "
        f"{keepalive.FAILOVER_PING_TIMEOUT_S})",
    )
    for flag, what in (
        ("--tls-cert", "this Envoy's client certificate (PEM path as Envoy sees it)"),
        ("--tls-key", "its private key (PEM path)"),
        ("--ca", "the CA that signed the control plane's certificate (PEM path)"),
        ("--server-name", "the DNS name in the control plane's certificate (SNI and SAN match)"),
    ):
        boot.add_argument(flag, metavar="FILE" if flag != "--server-name" else "NAME", help=what)


def _failed(error: CliError) -> int:
    print(f"xdsctl: error: {one_line(str(error))}", file=sys.stderr)
    return error.exit_code


def _run(args: argparse.Namespace, client: OperatorClient) -> None:
    """Run a client command: its warnings, then its output, then ``--wait`` if asked."""
    result = args.handler(args, client)
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(result.text)
    sys.stdout.flush()
    if getattr(args, "wait", False):
        wait_for_envoys(args, client, result.revision)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "local", None) is not None:
        try:
            return int(args.local(args))
        except CliError as error:
            return _failed(error)
    try:
        client = OperatorClient(server(args), credentials(args))
    except CliError as error:
        return _failed(error)
    try:
        _run(args, client)
    except CliError as error:
        return _failed(error)
    except KeyboardInterrupt:
        return 130  # the shell's convention for "stopped by Ctrl-C"
    except BrokenPipeError:
        # The reader went away (`xdsctl state export | head`): nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # the shell's convention for SIGPIPE
    finally:
        client.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
