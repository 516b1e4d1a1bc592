from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Endpoint(_message.Message):
    __slots__ = ("host", "port")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class Label(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class TagWeight(_message.Message):
    __slots__ = ("tag", "weight")
    TAG_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    tag: str
    weight: int
    def __init__(self, tag: _Optional[str] = ..., weight: _Optional[int] = ...) -> None: ...

class Mirror(_message.Message):
    __slots__ = ("tag", "percent")
    TAG_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    tag: str
    percent: str
    def __init__(self, tag: _Optional[str] = ..., percent: _Optional[str] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("id", "service", "created_at", "endpoints", "labels", "tag", "state", "desired", "scale")
    ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DESIRED_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    id: str
    service: str
    created_at: str
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    tag: str
    state: str
    desired: str
    scale: str
    def __init__(self, id: _Optional[str] = ..., service: _Optional[str] = ..., created_at: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., tag: _Optional[str] = ..., state: _Optional[str] = ..., desired: _Optional[str] = ..., scale: _Optional[str] = ...) -> None: ...

class ApplyRequest(_message.Message):
    __slots__ = ("service", "endpoints", "labels", "deployment_tag", "bluegreen", "if_revision", "in_place")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_TAG_FIELD_NUMBER: _ClassVar[int]
    BLUEGREEN_FIELD_NUMBER: _ClassVar[int]
    IF_REVISION_FIELD_NUMBER: _ClassVar[int]
    IN_PLACE_FIELD_NUMBER: _ClassVar[int]
    service: str
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    labels: _containers.RepeatedCompositeFieldContainer[Label]
    deployment_tag: str
    bluegreen: bool
    if_revision: int
    in_place: bool
    def __init__(self, service: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ..., labels: _Optional[_Iterable[_Union[Label, _Mapping]]] = ..., deployment_tag: _Optional[str] = ..., bluegreen: _Optional[bool] = ..., if_revision: _Optional[int] = ..., in_place: _Optional[bool] = ...) -> None: ...

class ApplyResponse(_message.Message):
    __slots__ = ("deployment", "weight", "replaced_deployment_id", "revision", "warnings")
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    REPLACED_DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    deployment: Deployment
    weight: int
    replaced_deployment_id: str
    revision: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deployment: _Optional[_Union[Deployment, _Mapping]] = ..., weight: _Optional[int] = ..., replaced_deployment_id: _Optional[str] = ..., revision: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class SetTrafficRequest(_message.Message):
    __slots__ = ("service", "weights", "mirrors", "if_revision", "sticky_header", "force")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    MIRRORS_FIELD_NUMBER: _ClassVar[int]
    IF_REVISION_FIELD_NUMBER: _ClassVar[int]
    STICKY_HEADER_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    service: str
    weights: _containers.RepeatedCompositeFieldContainer[TagWeight]
    mirrors: _containers.RepeatedCompositeFieldContainer[Mirror]
    if_revision: int
    sticky_header: str
    force: bool
    def __init__(self, service: _Optional[str] = ..., weights: _Optional[_Iterable[_Union[TagWeight, _Mapping]]] = ..., mirrors: _Optional[_Iterable[_Union[Mirror, _Mapping]]] = ..., if_revision: _Optional[int] = ..., sticky_header: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class Routing(_message.Message):
    __slots__ = ("override_header", "sticky_header", "shadow_header", "mirror_host_suffix")
    OVERRIDE_HEADER_FIELD_NUMBER: _ClassVar[int]
    STICKY_HEADER_FIELD_NUMBER: _ClassVar[int]
    SHADOW_HEADER_FIELD_NUMBER: _ClassVar[int]
    MIRROR_HOST_SUFFIX_FIELD_NUMBER: _ClassVar[int]
    override_header: str
    sticky_header: str
    shadow_header: str
    mirror_host_suffix: bool
    def __init__(self, override_header: _Optional[str] = ..., sticky_header: _Optional[str] = ..., shadow_header: _Optional[str] = ..., mirror_host_suffix: _Optional[bool] = ...) -> None: ...

class GetTrafficRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class PromoteTrafficRequest(_message.Message):
    __slots__ = ("service", "to_tag", "if_revision", "force")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TO_TAG_FIELD_NUMBER: _ClassVar[int]
    IF_REVISION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    service: str
    to_tag: str
    if_revision: int
    force: bool
    def __init__(self, service: _Optional[str] = ..., to_tag: _Optional[str] = ..., if_revision: _Optional[int] = ..., force: _Optional[bool] = ...) -> None: ...

class RollbackTrafficRequest(_message.Message):
    __slots__ = ("service", "to_revision", "if_revision", "force")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TO_REVISION_FIELD_NUMBER: _ClassVar[int]
    IF_REVISION_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    service: str
    to_revision: int
    if_revision: int
    force: bool
    def __init__(self, service: _Optional[str] = ..., to_revision: _Optional[int] = ..., if_revision: _Optional[int] = ..., force: _Optional[bool] = ...) -> None: ...

class TagTraffic(_message.Message):
    __slots__ = ("deployment_id", "tag", "weight")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    tag: str
    weight: int
    def __init__(self, deployment_id: _Optional[str] = ..., tag: _Optional[str] = ..., weight: _Optional[int] = ...) -> None: ...

class MirrorTraffic(_message.Message):
    __slots__ = ("deployment_id", "tag", "percent")
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    deployment_id: str
    tag: str
    percent: str
    def __init__(self, deployment_id: _Optional[str] = ..., tag: _Optional[str] = ..., percent: _Optional[str] = ...) -> None: ...

class Traffic(_message.Message):
    __slots__ = ("service", "tags", "mirror", "revision", "routing")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    MIRROR_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    service: str
    tags: _containers.RepeatedCompositeFieldContainer[TagTraffic]
    mirror: _containers.RepeatedCompositeFieldContainer[MirrorTraffic]
    revision: int
    routing: Routing
    def __init__(self, service: _Optional[str] = ..., tags: _Optional[_Iterable[_Union[TagTraffic, _Mapping]]] = ..., mirror: _Optional[_Iterable[_Union[MirrorTraffic, _Mapping]]] = ..., revision: _Optional[int] = ..., routing: _Optional[_Union[Routing, _Mapping]] = ...) -> None: ...

class TrafficChange(_message.Message):
    __slots__ = ("traffic", "warnings", "unchanged")
    TRAFFIC_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    traffic: Traffic
    warnings: _containers.RepeatedScalarFieldContainer[str]
    unchanged: bool
    def __init__(self, traffic: _Optional[_Union[Traffic, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., unchanged: _Optional[bool] = ...) -> None: ...

class Binding(_message.Message):
    __slots__ = ("tag", "deployment_id")
    TAG_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    tag: str
    deployment_id: str
    def __init__(self, tag: _Optional[str] = ..., deployment_id: _Optional[str] = ...) -> None: ...

class Picture(_message.Message):
    __slots__ = ("weights", "mirrors", "bindings", "routing")
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    MIRRORS_FIELD_NUMBER: _ClassVar[int]
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.RepeatedCompositeFieldContainer[TagWeight]
    mirrors: _containers.RepeatedCompositeFieldContainer[Mirror]
    bindings: _containers.RepeatedCompositeFieldContainer[Binding]
    routing: Routing
    def __init__(self, weights: _Optional[_Iterable[_Union[TagWeight, _Mapping]]] = ..., mirrors: _Optional[_Iterable[_Union[Mirror, _Mapping]]] = ..., bindings: _Optional[_Iterable[_Union[Binding, _Mapping]]] = ..., routing: _Optional[_Union[Routing, _Mapping]] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("revision", "time", "actor", "command", "before", "after", "reason")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    revision: int
    time: str
    actor: str
    command: str
    before: Picture
    after: Picture
    reason: str
    def __init__(self, revision: _Optional[int] = ..., time: _Optional[str] = ..., actor: _Optional[str] = ..., command: _Optional[str] = ..., before: _Optional[_Union[Picture, _Mapping]] = ..., after: _Optional[_Union[Picture, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListHistoryRequest(_message.Message):
    __slots__ = ("service", "limit")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    service: str
    limit: int
    def __init__(self, service: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListHistoryResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments",)
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ...) -> None: ...

class GetDeploymentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SetEndpointsRequest(_message.Message):
    __slots__ = ("id", "endpoints")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    def __init__(self, id: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ...) -> None: ...

class DeleteDeploymentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("name", "domains", "revision", "routing")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ROUTING_FIELD_NUMBER: _ClassVar[int]
    name: str
    domains: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    routing: Routing
    def __init__(self, name: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ..., routing: _Optional[_Union[Routing, _Mapping]] = ...) -> None: ...

class ConfigureServiceRequest(_message.Message):
    __slots__ = ("service", "domains", "override_header", "shadow_header", "mirror_host_suffix", "if_revision")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    OVERRIDE_HEADER_FIELD_NUMBER: _ClassVar[int]
    SHADOW_HEADER_FIELD_NUMBER: _ClassVar[int]
    MIRROR_HOST_SUFFIX_FIELD_NUMBER: _ClassVar[int]
    IF_REVISION_FIELD_NUMBER: _ClassVar[int]
    service: str
    domains: _containers.RepeatedScalarFieldContainer[str]
    override_header: str
    shadow_header: str
    mirror_host_suffix: bool
    if_revision: int
    def __init__(self, service: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., override_header: _Optional[str] = ..., shadow_header: _Optional[str] = ..., mirror_host_suffix: _Optional[bool] = ..., if_revision: _Optional[int] = ...) -> None: ...

class ConfigureServiceResponse(_message.Message):
    __slots__ = ("service", "created", "changed")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    service: Service
    created: bool
    changed: bool
    def __init__(self, service: _Optional[_Union[Service, _Mapping]] = ..., created: _Optional[bool] = ..., changed: _Optional[bool] = ...) -> None: ...

class GetTrafficMetricsRequest(_message.Message):
    __slots__ = ("service", "window_seconds")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    service: str
    window_seconds: float
    def __init__(self, service: _Optional[str] = ..., window_seconds: _Optional[float] = ...) -> None: ...

class TrafficFigures(_message.Message):
    __slots__ = ("requests", "by_code_class", "requests_per_second", "error_rate", "p50_ms", "p90_ms", "p99_ms")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    BY_CODE_CLASS_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    P50_MS_FIELD_NUMBER: _ClassVar[int]
    P90_MS_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    requests: int
    by_code_class: _containers.RepeatedScalarFieldContainer[int]
    requests_per_second: float
    error_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    def __init__(self, requests: _Optional[int] = ..., by_code_class: _Optional[_Iterable[int]] = ..., requests_per_second: _Optional[float] = ..., error_rate: _Optional[float] = ..., p50_ms: _Optional[float] = ..., p90_ms: _Optional[float] = ..., p99_ms: _Optional[float] = ...) -> None: ...

class TagMetrics(_message.Message):
    __slots__ = ("tag", "deployment_id", "weight", "mirror_percent", "real", "shadow", "envoys_reporting")
    TAG_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    MIRROR_PERCENT_FIELD_NUMBER: _ClassVar[int]
    REAL_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    ENVOYS_REPORTING_FIELD_NUMBER: _ClassVar[int]
    tag: str
    deployment_id: str
    weight: int
    mirror_percent: str
    real: TrafficFigures
    shadow: TrafficFigures
    envoys_reporting: int
    def __init__(self, tag: _Optional[str] = ..., deployment_id: _Optional[str] = ..., weight: _Optional[int] = ..., mirror_percent: _Optional[str] = ..., real: _Optional[_Union[TrafficFigures, _Mapping]] = ..., shadow: _Optional[_Union[TrafficFigures, _Mapping]] = ..., envoys_reporting: _Optional[int] = ...) -> None: ...

class TrafficMetrics(_message.Message):
    __slots__ = ("service", "window_seconds", "tags", "envoys_reporting", "missing_intervals")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    ENVOYS_REPORTING_FIELD_NUMBER: _ClassVar[int]
    MISSING_INTERVALS_FIELD_NUMBER: _ClassVar[int]
    service: str
    window_seconds: float
    tags: _containers.RepeatedCompositeFieldContainer[TagMetrics]
    envoys_reporting: int
    missing_intervals: int
    def __init__(self, service: _Optional[str] = ..., window_seconds: _Optional[float] = ..., tags: _Optional[_Iterable[_Union[TagMetrics, _Mapping]]] = ..., envoys_reporting: _Optional[int] = ..., missing_intervals: _Optional[int] = ...) -> None: ...

class SetServiceDomainsRequest(_message.Message):
    __slots__ = ("service", "domains")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    service: str
    domains: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, service: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ...) -> None: ...

class SetServiceDomainsResponse(_message.Message):
    __slots__ = ("service", "created")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    service: Service
    created: bool
    def __init__(self, service: _Optional[_Union[Service, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[Service]
    def __init__(self, services: _Optional[_Iterable[_Union[Service, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("counts_only",)
    COUNTS_ONLY_FIELD_NUMBER: _ClassVar[int]
    counts_only: bool
    def __init__(self, counts_only: _Optional[bool] = ...) -> None: ...

class TypeStatus(_message.Message):
    __slots__ = ("type", "acked_version", "current_version")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ACKED_VERSION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    type: str
    acked_version: str
    current_version: str
    def __init__(self, type: _Optional[str] = ..., acked_version: _Optional[str] = ..., current_version: _Optional[str] = ...) -> None: ...

class NackStatus(_message.Message):
    __slots__ = ("type", "version", "message", "time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    type: str
    version: str
    message: str
    time: str
    def __init__(self, type: _Optional[str] = ..., version: _Optional[str] = ..., message: _Optional[str] = ..., time: _Optional[str] = ...) -> None: ...

class NodeStatus(_message.Message):
    __slots__ = ("node_id", "cluster", "peer", "mode", "connected", "connected_since", "disconnected_at", "in_sync", "reason", "types", "nacks", "change")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SINCE_FIELD_NUMBER: _ClassVar[int]
    DISCONNECTED_AT_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    NACKS_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    cluster: str
    peer: str
    mode: str
    connected: bool
    connected_since: str
    disconnected_at: str
    in_sync: bool
    reason: str
    types: _containers.RepeatedCompositeFieldContainer[TypeStatus]
    nacks: _containers.RepeatedCompositeFieldContainer[NackStatus]
    change: int
    def __init__(self, node_id: _Optional[str] = ..., cluster: _Optional[str] = ..., peer: _Optional[str] = ..., mode: _Optional[str] = ..., connected: _Optional[bool] = ..., connected_since: _Optional[str] = ..., disconnected_at: _Optional[str] = ..., in_sync: _Optional[bool] = ..., reason: _Optional[str] = ..., types: _Optional[_Iterable[_Union[TypeStatus, _Mapping]]] = ..., nacks: _Optional[_Iterable[_Union[NackStatus, _Mapping]]] = ..., change: _Optional[int] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("nodes", "store", "change", "connected", "in_sync")
    NODES_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    store: str
    change: int
    connected: int
    in_sync: int
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ..., store: _Optional[str] = ..., change: _Optional[int] = ..., connected: _Optional[int] = ..., in_sync: _Optional[int] = ...) -> None: ...

class WaitForSyncRequest(_message.Message):
    __slots__ = ("timeout_seconds", "min_envoys")
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MIN_ENVOYS_FIELD_NUMBER: _ClassVar[int]
    timeout_seconds: float
    min_envoys: int
    def __init__(self, timeout_seconds: _Optional[float] = ..., min_envoys: _Optional[int] = ...) -> None: ...

class WaitForSyncResponse(_message.Message):
    __slots__ = ("done", "seconds", "envoys", "lagging")
    DONE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ENVOYS_FIELD_NUMBER: _ClassVar[int]
    LAGGING_FIELD_NUMBER: _ClassVar[int]
    done: bool
    seconds: float
    envoys: int
    lagging: _containers.RepeatedCompositeFieldContainer[NodeStatus]
    def __init__(self, done: _Optional[bool] = ..., seconds: _Optional[float] = ..., envoys: _Optional[int] = ..., lagging: _Optional[_Iterable[_Union[NodeStatus, _Mapping]]] = ...) -> None: ...

class ExportStateRequest(_message.Message):
    __slots__ = ("include_secrets",)
    INCLUDE_SECRETS_FIELD_NUMBER: _ClassVar[int]
    include_secrets: bool
    def __init__(self, include_secrets: _Optional[bool] = ...) -> None: ...

class ExportStateResponse(_message.Message):
    __slots__ = ("document",)
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    document: str
    def __init__(self, document: _Optional[str] = ...) -> None: ...

class ImportStateRequest(_message.Message):
    __slots__ = ("document", "replace")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    document: str
    replace: bool
    def __init__(self, document: _Optional[str] = ..., replace: _Optional[bool] = ...) -> None: ...

class ImportStateResponse(_message.Message):
    __slots__ = ("services", "deployments", "history_entries")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    services: int
    deployments: int
    history_entries: int
    def __init__(self, services: _Optional[int] = ..., deployments: _Optional[int] = ..., history_entries: _Optional[int] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("name", "role", "created_at", "created_by")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    created_at: str
    created_by: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., created_at: _Optional[str] = ..., created_by: _Optional[str] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("name", "role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("info", "token")
    INFO_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    info: TokenInfo
    token: str
    def __init__(self, info: _Optional[_Union[TokenInfo, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class StartRolloutRequest(_message.Message):
    __slots__ = ("service", "to_tag", "steps", "interval_seconds", "max_error_rate", "max_p99", "min_requests", "failure_limit", "no_data_timeout_seconds")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TO_TAG_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_P99_FIELD_NUMBER: _ClassVar[int]
    MIN_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    NO_DATA_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    service: str
    to_tag: str
    steps: _containers.RepeatedScalarFieldContainer[str]
    interval_seconds: float
    max_error_rate: str
    max_p99: str
    min_requests: int
    failure_limit: int
    no_data_timeout_seconds: float
    def __init__(self, service: _Optional[str] = ..., to_tag: _Optional[str] = ..., steps: _Optional[_Iterable[str]] = ..., interval_seconds: _Optional[float] = ..., max_error_rate: _Optional[str] = ..., max_p99: _Optional[str] = ..., min_requests: _Optional[int] = ..., failure_limit: _Optional[int] = ..., no_data_timeout_seconds: _Optional[float] = ...) -> None: ...

class GetRolloutRequest(_message.Message):
    __slots__ = ("service",)
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    service: str
    def __init__(self, service: _Optional[str] = ...) -> None: ...

class ListRolloutsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRolloutsResponse(_message.Message):
    __slots__ = ("rollouts",)
    ROLLOUTS_FIELD_NUMBER: _ClassVar[int]
    rollouts: _containers.RepeatedCompositeFieldContainer[Rollout]
    def __init__(self, rollouts: _Optional[_Iterable[_Union[Rollout, _Mapping]]] = ...) -> None: ...

class ChangeRolloutRequest(_message.Message):
    __slots__ = ("service", "action", "full", "reason")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FULL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    service: str
    action: str
    full: bool
    reason: str
    def __init__(self, service: _Optional[str] = ..., action: _Optional[str] = ..., full: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class RolloutVerdict(_message.Message):
    __slots__ = ("at", "step", "outcome", "detail", "requests", "error_rate", "p99_ms")
    AT_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    P99_MS_FIELD_NUMBER: _ClassVar[int]
    at: float
    step: int
    outcome: str
    detail: str
    requests: int
    error_rate: float
    p99_ms: float
    def __init__(self, at: _Optional[float] = ..., step: _Optional[int] = ..., outcome: _Optional[str] = ..., detail: _Optional[str] = ..., requests: _Optional[int] = ..., error_rate: _Optional[float] = ..., p99_ms: _Optional[float] = ...) -> None: ...

class RolloutEvent(_message.Message):
    __slots__ = ("at", "phase", "step", "reason")
    AT_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    at: float
    phase: str
    step: int
    reason: str
    def __init__(self, at: _Optional[float] = ..., phase: _Optional[str] = ..., step: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class Rollout(_message.Message):
    __slots__ = ("service", "stable", "canary", "steps", "step", "phase", "interval_seconds", "max_error_rate", "max_p99", "min_requests", "failure_limit", "no_data_timeout_seconds", "started_at", "next_check_at", "failures", "reason", "verdicts", "events", "weights", "revision")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    STABLE_FIELD_NUMBER: _ClassVar[int]
    CANARY_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    MAX_P99_FIELD_NUMBER: _ClassVar[int]
    MIN_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    NO_DATA_TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_CHECK_AT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    service: str
    stable: str
    canary: str
    steps: _containers.RepeatedScalarFieldContainer[str]
    step: int
    phase: str
    interval_seconds: float
    max_error_rate: str
    max_p99: str
    min_requests: int
    failure_limit: int
    no_data_timeout_seconds: float
    started_at: float
    next_check_at: float
    failures: int
    reason: str
    verdicts: _containers.RepeatedCompositeFieldContainer[RolloutVerdict]
    events: _containers.RepeatedCompositeFieldContainer[RolloutEvent]
    weights: _containers.RepeatedCompositeFieldContainer[TagWeight]
    revision: int
    def __init__(self, service: _Optional[str] = ..., stable: _Optional[str] = ..., canary: _Optional[str] = ..., steps: _Optional[_Iterable[str]] = ..., step: _Optional[int] = ..., phase: _Optional[str] = ..., interval_seconds: _Optional[float] = ..., max_error_rate: _Optional[str] = ..., max_p99: _Optional[str] = ..., min_requests: _Optional[int] = ..., failure_limit: _Optional[int] = ..., no_data_timeout_seconds: _Optional[float] = ..., started_at: _Optional[float] = ..., next_check_at: _Optional[float] = ..., failures: _Optional[int] = ..., reason: _Optional[str] = ..., verdicts: _Optional[_Iterable[_Union[RolloutVerdict, _Mapping]]] = ..., events: _Optional[_Iterable[_Union[RolloutEvent, _Mapping]]] = ..., weights: _Optional[_Iterable[_Union[TagWeight, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("service", "view")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    service: str
    view: str
    def __init__(self, service: _Optional[str] = ..., view: _Optional[str] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("traffic", "rollout", "status")
    TRAFFIC_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    traffic: Traffic
    rollout: Rollout
    status: GetStatusResponse
    def __init__(self, traffic: _Optional[_Union[Traffic, _Mapping]] = ..., rollout: _Optional[_Union[Rollout, _Mapping]] = ..., status: _Optional[_Union[GetStatusResponse, _Mapping]] = ...) -> None: ...

class Hook(_message.Message):
    __slots__ = ("name", "kind", "target", "events", "timeout_seconds", "signed", "created_at", "created_by", "pending", "failed")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    target: str
    events: _containers.RepeatedScalarFieldContainer[str]
    timeout_seconds: float
    signed: bool
    created_at: str
    created_by: str
    pending: int
    failed: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., target: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., timeout_seconds: _Optional[float] = ..., signed: _Optional[bool] = ..., created_at: _Optional[str] = ..., created_by: _Optional[str] = ..., pending: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class AddHookRequest(_message.Message):
    __slots__ = ("name", "url", "command", "secret", "events", "timeout_seconds")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    command: _containers.RepeatedScalarFieldContainer[str]
    secret: str
    events: _containers.RepeatedScalarFieldContainer[str]
    timeout_seconds: float
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., secret: _Optional[str] = ..., events: _Optional[_Iterable[str]] = ..., timeout_seconds: _Optional[float] = ...) -> None: ...

class ListHooksRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListHooksResponse(_message.Message):
    __slots__ = ("hooks",)
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    hooks: _containers.RepeatedCompositeFieldContainer[Hook]
    def __init__(self, hooks: _Optional[_Iterable[_Union[Hook, _Mapping]]] = ...) -> None: ...

class RemoveHookRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class TestHookRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class HookAttempt(_message.Message):
    __slots__ = ("hook", "event_id", "event_type", "attempt", "time", "outcome", "status", "response", "replica")
    HOOK_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    hook: str
    event_id: str
    event_type: str
    attempt: int
    time: str
    outcome: str
    status: str
    response: str
    replica: str
    def __init__(self, hook: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., attempt: _Optional[int] = ..., time: _Optional[str] = ..., outcome: _Optional[str] = ..., status: _Optional[str] = ..., response: _Optional[str] = ..., replica: _Optional[str] = ...) -> None: ...

class ListHookDeliveriesRequest(_message.Message):
    __slots__ = ("name", "limit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    limit: int
    def __init__(self, name: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListHookDeliveriesResponse(_message.Message):
    __slots__ = ("attempts",)
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[HookAttempt]
    def __init__(self, attempts: _Optional[_Iterable[_Union[HookAttempt, _Mapping]]] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionInfo(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...
