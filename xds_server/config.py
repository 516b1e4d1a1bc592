"""The server's settings, with their defaults in one place (flags and docs read them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServeConfig:
    state_path: Path = Path("./xds-state.db")
    # A postgresql:// URL: the shared store for HA replicas (instead of state_path).
    store_url: str | None = None
    # With PostgreSQL: how often a replica compares its state with the
    # database even without a change notice (a last resort).
    resync_seconds: float = 30.0
    api_listen: str = "127.0.0.1:18001"
    xds_listen: str = "127.0.0.1:18000"
    envoy_listen: str = "0.0.0.0:10000"
    metrics_listen: str = "127.0.0.1:9102"
    # How long a disconnected Envoy stays listed in `xdsctl status`.
    node_grace_seconds: float = 60.0
