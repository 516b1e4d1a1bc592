"""Envoy bootstraps for this control plane (``xdsctl bootstrap``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xds_server.errors import InvalidRequest
from xds_server.model.names import parse_endpoint
from xds_server.xds import keepalive

XDS_CLUSTER = "xds_cluster"
# With several replicas, each gets a cluster of its own for the stats sink: a sink
# stream reaches one host of its cluster, and every replica should count every Envoy.
METRICS_CLUSTER_PREFIX = "xds_metrics_"
METRICS_SINK = "envoy.stat_sinks.metrics_service"
# The sink's per-interval deltas are what the control plane's windows are made of.
STATS_FLUSH_INTERVAL = "1s"


@dataclass(frozen=True)
class BootstrapOptions:
    node_id: str = "envoy"
    node_cluster: str = "xds-server"
    # One replica's HOST:PORT, or several, comma-separated.
    xds: str = "127.0.0.1:18000"
    admin: str = "127.0.0.1:9901"
    delta: bool = False
    # None: the default for one replica, or the shorter failover one for several.
    keepalive_interval_s: int | None = None
    keepalive_timeout_s: int | None = None
    # mTLS to the control plane: this Envoy's certificate and key, the CA that
    # signed the server's, and the name the server's certificate must carry.
    tls_cert: str | None = None
    tls_key: str | None = None
    ca: str | None = None
    server_name: str | None = None
    # Stream Envoy's stats to the control plane (MetricsService), for `xdsctl metrics`.
    metrics: bool = True
    # The longest wait between Envoy's attempts to open the ADS stream. None: Envoy's
    # own backoff (0.5 s doubling to 30 s, with full jitter), which spreads a whole
    # fleet's return after an outage over what one replica accepts (~270 streams/s).
    reconnect_max_s: float | None = None

    def replicas(self) -> list[str]:
        return [address.strip() for address in self.xds.split(",") if address.strip()]

    def keepalive(self) -> tuple[int, int]:
        """(interval, timeout) in seconds for the HTTP/2 pings to the control plane."""
        several = len(self.replicas()) > 1
        interval = keepalive.FAILOVER_PING_INTERVAL_S if several else keepalive.PING_INTERVAL_S
        timeout = keepalive.FAILOVER_PING_TIMEOUT_S if several else keepalive.PING_TIMEOUT_S
        return (
            interval if self.keepalive_interval_s is None else self.keepalive_interval_s,
            timeout if self.keepalive_timeout_s is None else self.keepalive_timeout_s,
        )


def _socket_address(text: str) -> dict[str, Any]:
    endpoint = parse_endpoint(text)
    return {"socket_address": {"address": endpoint.host, "port_value": endpoint.port}}


# Envoy's own first retry delay for the ADS stream; a shorter cap lowers it too.
RECONNECT_BASE_S = 0.5
# Below this, a fleet retrying a down control plane is mostly load on it.
MIN_RECONNECT_MAX_S = 0.1

TLS_FLAGS = ("--tls-cert", "--tls-key", "--ca", "--server-name")


def _transport_socket(options: BootstrapOptions) -> dict[str, Any] | None:
    """The xds_cluster's TLS: client certificate, SNI, and the server's name pinned.

    The SAN match matters: without it Envoy accepts any certificate from the
    CA, including another node's, as its control plane.
    """
    given = (options.tls_cert, options.tls_key, options.ca, options.server_name)
    if not any(given):
        return None
    if not all(given):
        missing = [flag for flag, value in zip(TLS_FLAGS, given, strict=True) if not value]
        raise InvalidRequest(
            f"TLS to the control plane needs {', '.join(TLS_FLAGS)} together "
            f"(missing {', '.join(missing)})"
        )
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/"
            "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": options.server_name,
            "common_tls_context": {
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": options.tls_cert},
                        "private_key": {"filename": options.tls_key},
                    }
                ],
                "validation_context": {
                    "trusted_ca": {"filename": options.ca},
                    "match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": options.server_name}}
                    ],
                },
            },
        },
    }


def _checked(options: BootstrapOptions) -> None:
    """Refuse options no Envoy could start with, naming the flag and the fix."""
    interval, _ = options.keepalive()
    if interval < keepalive.MIN_PING_INTERVAL_S:
        raise InvalidRequest(
            f"--keepalive-interval must be at least {keepalive.MIN_PING_INTERVAL_S}s: the server "
            "answers more frequent pings with GOAWAY"
        )
    if options.reconnect_max_s is not None and options.reconnect_max_s < MIN_RECONNECT_MAX_S:
        raise InvalidRequest(
            f"--reconnect-max must be at least {MIN_RECONNECT_MAX_S:g}s: faster retries "
            "from a fleet only load a control plane that is down"
        )
    if not options.node_id:
        raise InvalidRequest("--node-id must not be empty: every Envoy needs its own id")
    replicas = options.replicas()
    if not replicas:
        raise InvalidRequest("--xds needs at least one HOST:PORT (several: comma-separated)")
    if len(set(replicas)) != len(replicas):
        raise InvalidRequest(f"--xds lists a replica twice: {options.xds}")


def _xds_cluster(
    options: BootstrapOptions, name: str = XDS_CLUSTER, replicas: list[str] | None = None
) -> dict[str, Any]:
    """The static cluster of the control plane's replicas: HTTP/2 with keepalive, and TLS
    when asked for."""
    interval, timeout = options.keepalive()
    replicas = replicas or options.replicas()
    all_ips = all(parse_endpoint(address).is_ip for address in replicas)
    cluster = {
        "name": name,
        # A host name (as in Docker Compose) is resolved by DNS.
        "type": "STATIC" if all_ips else "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": _socket_address(address)}} for address in replicas
                    ]
                }
            ],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {
                            "interval": f"{interval}s",
                            "timeout": f"{timeout}s",
                        }
                    }
                },
            }
        },
    }
    transport_socket = _transport_socket(options)
    if transport_socket is not None:
        cluster["transport_socket"] = transport_socket
    return cluster


def _metrics_sink(cluster: str) -> dict[str, Any]:
    """Envoy's MetricsService sink to ``cluster``: per-interval deltas, tags as labels,
    latency as histograms (``xds_server.traffic`` reads exactly this shape)."""
    return {
        "name": METRICS_SINK,
        "typed_config": {
            "@type": "type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig",
            "transport_api_version": "V3",
            "report_counters_as_deltas": True,
            "emit_tags_as_labels": True,
            "histogram_emit_mode": "HISTOGRAM",
            "grpc_service": {"envoy_grpc": {"cluster_name": cluster}},
        },
    }


def _metrics(options: BootstrapOptions) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The stats sinks, and the clusters they need beyond xds_cluster.

    One replica: the sink shares xds_cluster. Several: one sink and one cluster
    per replica, so every replica receives every Envoy's stats and a replica that
    dies takes no Envoy's figures with it.
    """
    replicas = options.replicas()
    if len(replicas) == 1:
        return [_metrics_sink(XDS_CLUSTER)], []
    clusters = [
        _xds_cluster(options, f"{METRICS_CLUSTER_PREFIX}{index}", [address])
        for index, address in enumerate(replicas)
    ]
    return [_metrics_sink(cluster["name"]) for cluster in clusters], clusters


def _seconds(value: float) -> str:
    """A protobuf Duration in JSON, to the millisecond: ``0.5s``, ``30s``."""
    return f"{round(value, 3):g}s"


def _ads_service(options: BootstrapOptions) -> dict[str, Any]:
    """The ADS stream's gRPC service, with the reconnect backoff when one is asked for."""
    envoy_grpc: dict[str, Any] = {"cluster_name": XDS_CLUSTER}
    if options.reconnect_max_s is not None:
        envoy_grpc["retry_policy"] = {
            "retry_back_off": {
                "base_interval": _seconds(min(RECONNECT_BASE_S, options.reconnect_max_s)),
                "max_interval": _seconds(options.reconnect_max_s),
            }
        }
    return {"envoy_grpc": envoy_grpc}


def bootstrap(options: BootstrapOptions) -> dict[str, Any]:
    """The bootstrap document: ADS over HTTP/2 with keepalive to the replica(s) in ``xds``.

    With several replicas, Envoy's ``xds_cluster`` holds them all: a replica
    that dies resets the connection and Envoy reconnects to another; one that
    hangs is left when a keepalive ping goes unanswered.
    """
    _checked(options)
    clusters = [_xds_cluster(options)]
    document: dict[str, Any] = {
        "node": {"id": options.node_id, "cluster": options.node_cluster},
        "admin": {"address": _socket_address(options.admin)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if options.delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [_ads_service(options)],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {"clusters": clusters},
    }
    if options.metrics:
        sinks, sink_clusters = _metrics(options)
        clusters.extend(sink_clusters)
        document["stats_sinks"] = sinks
        document["stats_flush_interval"] = STATS_FLUSH_INTERVAL
    return document
