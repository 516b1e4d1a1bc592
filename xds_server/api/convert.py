"""Model values to and from the operator API's protobuf messages."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from xds_server.auth.tokens import TokenRecord
from xds_server.model.events import desired_state
from xds_server.model.names import parse_percent, validate_endpoint
from xds_server.model.operations import ApplyResult, RolloutResult, Traffic
from xds_server.model.state import (
    Deployment,
    Endpoint,
    HistoryEntry,
    Mirror,
    Picture,
    Routing,
    Service,
)
from xds_server.replication.posted import PostedNode, posted_node
from xds_server.v1 import operator_pb2 as pb
from xds_server.xds.registry import NodeRecord, Sync


def endpoints_from_pb(messages: Iterable[pb.Endpoint]) -> list[Endpoint]:
    return [validate_endpoint(m.host, m.port) for m in messages]


def mirrors_from_pb(messages: Iterable[pb.Mirror]) -> list[Mirror]:
    return [Mirror(tag=m.tag, hundredths=parse_percent(m.tag, m.percent)) for m in messages]


def optional(request: Message, field: str) -> Any:
    """A request's ``optional`` field, None when the client left it unset."""
    return getattr(request, field) if request.HasField(field) else None


def if_revision(request: Message) -> int | None:
    """The optional ``if_revision`` field of a request, None when unset."""
    value: int | None = optional(request, "if_revision")
    return value


def deployment_to_pb(deployment: Deployment, scale: str = "") -> pb.Deployment:
    """``scale``: whether a hook confirmed its latest scale event (``deployments list``)."""
    return pb.Deployment(
        id=deployment.id,
        service=deployment.service,
        created_at=deployment.created_at,
        endpoints=[pb.Endpoint(host=e.host, port=e.port) for e in deployment.endpoints],
        labels=[pb.Label(key=k, value=v) for k, v in deployment.labels],
        tag=deployment.tag or "",
        state=deployment.state.value,
        desired=desired_state(deployment),
        scale=scale,
    )


def apply_to_pb(result: ApplyResult) -> pb.ApplyResponse:
    return pb.ApplyResponse(
        deployment=deployment_to_pb(result.deployment),
        weight=result.weight,
        replaced_deployment_id=result.replaced_deployment_id or "",
        revision=result.revision,
        warnings=result.warnings,
    )


def traffic_to_pb(traffic: Traffic) -> pb.Traffic:
    return pb.Traffic(
        service=traffic.service,
        tags=[
            pb.TagTraffic(deployment_id=t.deployment_id, tag=t.tag, weight=t.weight)
            for t in traffic.tags
        ],
        mirror=[
            pb.MirrorTraffic(deployment_id=m.deployment_id, tag=m.tag, percent=m.percent)
            for m in traffic.mirror
        ],
        revision=traffic.revision,
        routing=routing_to_pb(traffic.routing),
    )


def routing_to_pb(routing: Routing) -> pb.Routing:
    return pb.Routing(
        override_header=routing.override_header or "",
        sticky_header=routing.sticky_header or "",
        shadow_header=routing.shadow_header or "",
        mirror_host_suffix=routing.mirror_host_suffix,
    )


def _picture_to_pb(picture: Picture) -> pb.Picture:
    return pb.Picture(
        weights=[pb.TagWeight(tag=t, weight=w) for t, w in picture.policy.weights],
        mirrors=[pb.Mirror(tag=m.tag, percent=m.percent) for m in picture.policy.mirrors],
        bindings=[pb.Binding(tag=t, deployment_id=d) for t, d in picture.bindings],
        routing=routing_to_pb(picture.routing),
    )


def history_to_pb(entry: HistoryEntry) -> pb.HistoryEntry:
    return pb.HistoryEntry(
        revision=entry.revision,
        time=entry.time,
        actor=entry.actor,
        command=entry.command,
        before=_picture_to_pb(entry.before),
        after=_picture_to_pb(entry.after),
        reason=entry.reason,
    )


def service_to_pb(service: Service) -> pb.Service:
    return pb.Service(
        name=service.name,
        domains=service.domains,
        revision=service.revision,
        routing=routing_to_pb(service.routing),
    )


def node_status_to_pb(record: NodeRecord, sync: Sync | None = None) -> pb.NodeStatus:
    """A node's status; ``sync`` saves computing it twice when the caller has it."""
    return posted_to_pb(posted_node(record, sync))


def posted_to_pb(node: PostedNode) -> pb.NodeStatus:
    """A node's status in the operator API, from what this or another replica posted."""
    return pb.NodeStatus(
        node_id=node.node_id,
        cluster=node.cluster,
        peer=node.peer,
        mode=node.mode,
        connected=node.connected,
        connected_since=node.connected_since,
        disconnected_at=node.disconnected_at,
        in_sync=node.in_sync,
        reason=node.reason,
        change=node.change,
        types=[
            pb.TypeStatus(
                type=t.type, acked_version=t.acked_version, current_version=t.current_version
            )
            for t in node.types
        ],
        nacks=[
            pb.NackStatus(type=n.type, version=n.version, message=n.message, time=n.time)
            for n in node.nacks
        ],
    )


def token_to_pb(record: TokenRecord) -> pb.TokenInfo:
    """A token's public facts: never the secret (which the server does not keep) nor its
    hash (which only `state export` carries, for admins)."""
    return pb.TokenInfo(
        name=record.name,
        role=record.role.label,
        created_at=record.created_at,
        created_by=record.created_by,
    )


def _step_text(step: int | None) -> str:
    return "pause" if step is None else str(step)


def rollout_to_pb(result: RolloutResult, service: str) -> pb.Rollout:
    """A service's rollout, with the weights it left and the revision."""
    rollout = result.rollout
    spec = rollout.spec
    reply = pb.Rollout(
        service=service,
        stable=spec.stable,
        canary=spec.canary,
        steps=[_step_text(s) for s in spec.steps],
        step=rollout.step,
        phase=rollout.phase.value,
        interval_seconds=spec.interval_s,
        max_error_rate=spec.max_error_rate.text if spec.max_error_rate else "",
        max_p99=spec.max_p99.text if spec.max_p99 else "",
        min_requests=spec.min_requests,
        failure_limit=spec.failure_limit,
        no_data_timeout_seconds=spec.no_data_timeout_s,
        started_at=rollout.started_at,
        next_check_at=rollout.next_check_at,
        failures=rollout.failures,
        reason=rollout.reason,
        events=[
            pb.RolloutEvent(at=e.at, phase=e.phase.value, step=e.step, reason=e.reason)
            for e in rollout.events
        ],
        weights=[pb.TagWeight(tag=t.tag, weight=t.weight) for t in result.traffic.tags],
        revision=result.revision,
    )
    for verdict in rollout.verdicts:
        item = pb.RolloutVerdict(
            at=verdict.at,
            step=verdict.step,
            outcome=verdict.outcome,
            detail=verdict.detail,
            requests=verdict.canary.requests,
        )
        if verdict.canary.error_rate is not None:
            item.error_rate = verdict.canary.error_rate
        if verdict.canary.p99_ms is not None:
            item.p99_ms = verdict.canary.p99_ms
        reply.verdicts.append(item)
    return reply
