"""The server's settings, with their defaults in one place (flags and docs read them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xds_server.auth.limits import StreamLimits
from xds_server.auth.roles import Role

MIB = 1024 * 1024


@dataclass(frozen=True)
class TlsFiles:
    """A port's TLS: its certificate and key, and (for mTLS) the CA clients must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True)
class ServeConfig:
    state_path: Path = Path("./xds-state.db")
    # A postgresql:// URL: the shared store for HA replicas (instead of state_path).
    # Never with a password in it: that comes from store_password or libpq.
    store_url: str | None = None
    # From --store-password-file; kept out of repr so it never reaches a log.
    store_password: str | None = field(default=None, repr=False)
    # With PostgreSQL: how often a replica compares its state with the
    # database even without a change notice (a last resort).
    resync_seconds: float = 30.0
    api_listen: str = "127.0.0.1:18001"
    xds_listen: str = "127.0.0.1:18000"
    envoy_listen: str = "0.0.0.0:10000"
    metrics_listen: str = "127.0.0.1:9102"
    # How long a disconnected Envoy stays listed in `xdsctl status`.
    node_grace_seconds: float = 60.0

    # --- security (docs/security.md) ---
    api_tls: TlsFiles | None = None
    # Client-certificate subject → role, for an API with a client CA.
    api_cert_roles: tuple[tuple[str, Role], ...] = ()
    xds_tls: TlsFiles | None = None
    # Serve the API on a non-loopback address without TLS and authentication
    # (a server without tokens still lets in only callers on its own machine).
    insecure: bool = False
    # Requests above these are refused (RESOURCE_EXHAUSTED) before parsing. An
    # Envoy request is a few KB; a state import of thousands of services fits.
    api_max_message_bytes: int = 16 * MIB
    xds_max_message_bytes: int = 4 * MIB
    # Calls in flight on the operator port: above the HA tests' 200 concurrent
    # writes from one client.
    api_max_calls_per_connection: int = 1_000
    api_max_calls_per_peer: int = 5_000
    api_max_calls_per_identity: int = 5_000
    # Writes per identity: a burst, then a steady rate.
    api_write_rate: float = 100.0
    api_write_burst: int = 1_000
    # ADS streams: Envoy opens one per connection; the benchmark runs 10,000
    # simulated Envoys from one loopback address, 100 per connection. The
    # identity is the node's certificate (mTLS only: a claimed node id would let
    # anyone use up a real node's streams).
    xds_max_streams_per_connection: int = 1_000
    xds_max_streams_per_peer: int = 100_000
    xds_max_streams_per_identity: int = 100

    def api_call_limits(self) -> StreamLimits:
        return StreamLimits(
            self.api_max_calls_per_connection,
            self.api_max_calls_per_peer,
            self.api_max_calls_per_identity,
            "--api-max-calls",
        )

    def xds_stream_limits(self) -> StreamLimits:
        return StreamLimits(
            self.xds_max_streams_per_connection,
            self.xds_max_streams_per_peer,
            self.xds_max_streams_per_identity,
            "--xds-max-streams",
        )
