"""Pure translation of the operator's intent into Envoy resources."""

from xds_server.translate.translator import (
    LISTENER_NAME,
    ROUTE_CONFIG_NAME,
    EnvoyResources,
    StandbyResources,
    TranslateOptions,
    build_cluster,
    build_listener,
    build_load_assignment,
    build_virtual_host,
    cluster_name,
    holders_of,
    host_references,
    route_references,
    translate,
    translate_standby,
    uses_eds,
)

__all__ = [
    "LISTENER_NAME",
    "ROUTE_CONFIG_NAME",
    "EnvoyResources",
    "StandbyResources",
    "TranslateOptions",
    "build_cluster",
    "build_listener",
    "build_load_assignment",
    "build_virtual_host",
    "cluster_name",
    "holders_of",
    "host_references",
    "route_references",
    "translate",
    "translate_standby",
    "uses_eds",
]
