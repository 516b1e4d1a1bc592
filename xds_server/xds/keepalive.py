"""HTTP/2 keepalive between Envoy and this server, in one place for both sides.

grpcio's default server policy allows one client ping every 5 minutes and
answers more with GOAWAY, which made every Envoy ADS stream reconnect every
couple of minutes. The server accepts pings down to ``MIN_PING_INTERVAL_S``;
``xdsctl bootstrap`` refuses an interval below it, so the two cannot disagree.
"""

from __future__ import annotations

# Bootstrap default: a hung control plane is noticed within interval + timeout.
PING_INTERVAL_S = 5
PING_TIMEOUT_S = 2
# With several replicas listed, a hung one (SIGSTOP, a frozen VM) is left only
# through keepalive: the open ADS stream never fails by itself, and health
# checks did not end it here (33-36 s). So fail over in about 3 s.
FAILOVER_PING_INTERVAL_S = 2
FAILOVER_PING_TIMEOUT_S = 1
# The shortest interval the server accepts without counting strikes.
MIN_PING_INTERVAL_S = 1


def server_options() -> list[tuple[str, int]]:
    """grpcio server options that accept the bootstrap's keepalive pings."""
    return [
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_S * 1000),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", MIN_PING_INTERVAL_S * 1000),
        ("grpc.http2.max_ping_strikes", 0),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
