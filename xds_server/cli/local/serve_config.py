"""``xdsctl serve``'s flags, checked and turned into a ``ServeConfig``."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

from xds_server.auth.roles import Role, parse_role
from xds_server.cli.client import EXIT_USAGE
from xds_server.cli.options import parsed
from xds_server.cli.secret_files import read_secret, warn_if_shared
from xds_server.config import ServeConfig, TlsFiles
from xds_server.errors import CliError, InvalidRequest
from xds_server.redaction import redact

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
