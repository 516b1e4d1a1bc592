"""TLS credentials for the two ports, read from PEM files with errors that name the flag."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import grpc

from xds_server.errors import ServeRefused


def read_pem(path: Path, flag: str) -> bytes:
    """A PEM file's bytes, or ``ServeRefused`` naming the flag that gave it."""
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
    _check_with_openssl(cert, key, client_ca, prefix)
    return grpc.ssl_server_credentials(
        [pair], root_certificates=roots, require_client_auth=bool(roots)
    )


def _check_with_openssl(cert: Path, key: Path, client_ca: Path | None, prefix: str) -> None:
    """Load the files the way a TLS server will, so a key that does not belong to its
    certificate is named here (gRPC only says it cannot listen)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as error:
        raise ServeRefused(
            f"{prefix}-tls-cert {cert} and {prefix}-tls-key {key} are not a certificate and "
            f"its private key ({error.reason or error}): give the key the certificate was made for"
        ) from error
    if client_ca is not None:
        try:
            context.load_verify_locations(client_ca)
        except ssl.SSLError as error:
            raise ServeRefused(
                f"{prefix}-client-ca {client_ca} holds no usable CA certificate "
                f"({error.reason or error})"
            ) from error


def is_loopback(host: str) -> bool:
    """Whether a listen host only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
