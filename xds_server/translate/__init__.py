"""Pure translation of the operator's intent into Envoy resources."""

from xds_server.translate.translator import (
    LISTENER_NAME,
    ROUTE_CONFIG_NAME,
    EnvoyResources,
    StandbyResources,
    TranslateOptions,
    cluster_name,
    route_references,
    translate,
    translate_standby,
)

__all__ = [
    "LISTENER_NAME",
    "ROUTE_CONFIG_NAME",
    "EnvoyResources",
    "StandbyResources",
    "TranslateOptions",
    "cluster_name",
    "route_references",
    "translate",
    "translate_standby",
]
