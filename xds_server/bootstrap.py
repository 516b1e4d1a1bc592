"""Envoy bootstraps for this control plane (``xdsctl bootstrap``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xds_server.errors import InvalidRequest
from xds_server.model.names import parse_endpoint
from xds_server.xds import keepalive

XDS_CLUSTER = "xds_cluster"


@dataclass(frozen=True)
class BootstrapOptions:
    node_id: str = "envoy"
    node_cluster: str = "xds-server"
    xds: str = "127.0.0.1:18000"
    admin: str = "127.0.0.1:9901"
    delta: bool = False
    keepalive_interval_s: int = keepalive.PING_INTERVAL_S
    keepalive_timeout_s: int = keepalive.PING_TIMEOUT_S


def _socket_address(text: str) -> dict[str, Any]:
    endpoint = parse_endpoint(text)
    return {"socket_address": {"address": endpoint.host, "port_value": endpoint.port}}


def bootstrap(options: BootstrapOptions) -> dict[str, Any]:
    """The bootstrap document: ADS over HTTP/2 with keepalive to ``options.xds``."""
    if options.keepalive_interval_s < keepalive.MIN_PING_INTERVAL_S:
        raise InvalidRequest(
            f"--keepalive-interval must be at least {keepalive.MIN_PING_INTERVAL_S}s: the server "
            "answers more frequent pings with GOAWAY"
        )
    if not options.node_id:
        raise InvalidRequest("--node-id must not be empty: every Envoy needs its own id")
    xds = parse_endpoint(options.xds)
    return {
        "node": {"id": options.node_id, "cluster": options.node_cluster},
        "admin": {"address": _socket_address(options.admin)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if options.delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": XDS_CLUSTER,
                    # A host name (as in Docker Compose) is resolved by DNS.
                    "type": "STATIC" if xds.is_ip else "STRICT_DNS",
                    "dns_lookup_family": "V4_PREFERRED",
                    "connect_timeout": "1s",
                    "load_assignment": {
                        "cluster_name": XDS_CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {"endpoint": {"address": _socket_address(options.xds)}}
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
                                        "interval": f"{options.keepalive_interval_s}s",
                                        "timeout": f"{options.keepalive_timeout_s}s",
                                    }
                                }
                            },
                        }
                    },
                }
            ]
        },
    }
