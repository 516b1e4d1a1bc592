"""TLS credentials for the two ports, read from PEM files with errors that name the flag."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import grpc

from xds_server.errors import ServeRefused


def read_pem(path: Path, flag: str) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ServeRefused(f"cannot read {flag} {path}: {error.strerror}") from error
    if b"-----BEGIN " not in data:
        raise ServeRefused(f"{flag} {path} is not a PEM file: give the PEM-encoded file")
    return data


def server_credentials(
    cert: Path, key: Path, client_ca: Path | None, prefix: str
) -> grpc.ServerCredentials:
    """TLS with ``cert``/``key``; with ``client_ca``, clients must present a certificate it
    signed (mTLS). ``prefix`` is the flags' prefix (``--api`` or ``--xds``) for errors."""
    pair = (read_pem(key, f"{prefix}-tls-key"), read_pem(cert, f"{prefix}-tls-cert"))
    roots = read_pem(client_ca, f"{prefix}-client-ca") if client_ca else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=roots, require_client_auth=bool(roots)
    )


def is_loopback(host: str) -> bool:
    """Whether a listen host only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
