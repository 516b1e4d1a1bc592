"""What a committed change tells other systems: events, derived from the worlds around it.

The store calls ``change_events`` inside the change's own transaction and writes the
events to its outbox there, so an event exists exactly when its change committed.
Events are derived from the two worlds, not from the operation that ran: every path
that changes a service (a command, a rollout's step, a rollback) tells the same story.
Pure: no clock, no I/O; the store gives the time and the actor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from xds_server.model.rollout import Phase, Rollout
from xds_server.model.state import (
    Deployment,
    DeploymentState,
    HistoryEntry,
    Service,
    TrafficPolicy,
    World,
)
from xds_server.model.world_document import routing_to_document

TRAFFIC_CHANGED = "traffic.changed"
DEPLOYMENT_APPLIED = "deployment.applied"
DEPLOYMENT_DELETED = "deployment.deleted"
DEPLOYMENT_SCALE = "deployment.scale"
SERVICE_CHANGED = "service.changed"
FLEET_NACK = "fleet.nack"
HOOK_TEST = "hook.test"
ROLLOUT_STARTED = "rollout.started"
ROLLOUT_STEP = "rollout.step"
ROLLOUT_PAUSED = "rollout.paused"
ROLLOUT_RESUMED = "rollout.resumed"
ROLLOUT_HOLDING = "rollout.holding"
ROLLOUT_ABORTED = "rollout.aborted"
ROLLOUT_COMPLETED = "rollout.completed"

# Every type a hook can subscribe to, in the order docs/events.md lists them.
EVENT_TYPES: tuple[str, ...] = (
    TRAFFIC_CHANGED,
    DEPLOYMENT_APPLIED,
    DEPLOYMENT_DELETED,
    DEPLOYMENT_SCALE,
    SERVICE_CHANGED,
    ROLLOUT_STARTED,
    ROLLOUT_STEP,
    ROLLOUT_PAUSED,
    ROLLOUT_RESUMED,
    ROLLOUT_HOLDING,
    ROLLOUT_ABORTED,
    ROLLOUT_COMPLETED,
    FLEET_NACK,
    HOOK_TEST,
)

RUNNING = "running"
STOPPED = "stopped"

_PHASE_EVENTS = {
    Phase.PAUSED: ROLLOUT_PAUSED,
    Phase.HOLDING: ROLLOUT_HOLDING,
    Phase.ABORTED: ROLLOUT_ABORTED,
    Phase.COMPLETED: ROLLOUT_COMPLETED,
}


@dataclass(frozen=True)
class Event:
    """One thing that happened, before the store gives it an id.

    ``deployment``: the deployment a ``deployment.*`` event is about (the store indexes
    it, so ``deployments list`` can tell whether its last scale event was confirmed).
    """

    type: str
    service: str | None
    revision: int | None
    actor: str
    time: str
    data: dict[str, Any] = field(default_factory=dict)
    deployment: str = ""

    def document(self, event_id: str) -> dict[str, Any]:
        """The event as hooks receive it (docs/events.md)."""
        return {
            "id": event_id,
            "type": self.type,
            "time": self.time,
            "service": self.service,
            "revision": self.revision,
            "actor": self.actor,
            "data": self.data,
        }


def desired_state(deployment: Deployment) -> str:
    """What an orchestrator should run: a deployment Envoy may route to (its tag is
    listed, weight 0 included) runs; a scaled-down one stops."""
    return RUNNING if deployment.state is DeploymentState.ACTIVE else STOPPED


def _policy(policy: TrafficPolicy) -> dict[str, Any]:
    return {
        "weights": dict(policy.weights),
        "mirrors": {mirror.tag: mirror.percent for mirror in policy.mirrors},
    }


def _placement(deployment: Deployment) -> dict[str, Any]:
    """Where a deployment runs and what it is: what an orchestrator finds it by."""
    return {
        "service": deployment.service,
        "tag": deployment.tag,
        "endpoints": [str(e) for e in deployment.endpoints],
        "labels": dict(deployment.labels),
    }


def deployment_document(deployment: Deployment) -> dict[str, Any]:
    """What an orchestrator needs to find and scale a deployment."""
    return {"id": deployment.id, **_placement(deployment), "state": deployment.state.value}


def _scale_data(deployment: Deployment, desired: str) -> dict[str, Any]:
    """A ``deployment.scale`` event's data: the deployment and the state it should be in."""
    return {"deployment_id": deployment.id, **_placement(deployment), "desired": desired}


def _rollout(rollout: Rollout) -> dict[str, Any]:
    spec = rollout.spec
    return {
        "stable": spec.stable,
        "canary": spec.canary,
        "phase": rollout.phase.value,
        "step": rollout.step + 1,
        "steps": ["pause" if p is None else p for p in spec.steps],
        "percent": rollout.percent,
        "reason": rollout.reason,
        "abort_cause": rollout.abort_cause or None,
    }


def _rollout_event_type(before: Rollout | None, after: Rollout | None) -> str | None:
    """Which transition a rollout made between two worlds, if any."""
    if after is None or before == after:
        return None
    if before is None or before.started_at != after.started_at:
        return ROLLOUT_STARTED
    if after.phase != before.phase:
        if after.phase is Phase.PROGRESSING:
            return ROLLOUT_RESUMED if before.step == after.step else ROLLOUT_STEP
        return _PHASE_EVENTS[after.phase]
    if after.step != before.step:
        return ROLLOUT_STEP
    return None  # a verdict recorded, the next check moved: nothing to tell


class _Stamp:
    """What every event of one change shares."""

    def __init__(self, actor: str, time: str, history: Iterable[HistoryEntry]) -> None:
        self.actor = actor
        self.time = time
        self.entries = {entry.service: entry for entry in history}

    def event(
        self,
        kind: str,
        service: Service,
        data: dict[str, Any],
        deployment: str = "",
    ) -> Event:
        entry = self.entries.get(service.name)
        actor = entry.actor if entry is not None else self.actor
        return Event(kind, service.name, service.revision, actor, self.time, data, deployment)


def change_events(
    before: World,
    after: World,
    services: Iterable[str],
    history: Iterable[HistoryEntry],
    actor: str,
    time: str,
) -> list[Event]:
    """The events of one committed change among ``services`` (what it touched), in the
    order an orchestrator needs them: the service, new deployments, the rollout, the
    traffic, then which deployments should run, then deletions."""
    stamp = _Stamp(actor, time, history)
    events: list[Event] = []
    for name in sorted(set(services)):
        service = after.services.get(name)
        if service is not None:
            events.extend(_service_events(before, after, service, stamp))
        elif name in before.services:  # only an import removes a service
            events.extend(_removed_service_events(before, before.services[name], stamp))
    return events


def _removed_service_events(before: World, service: Service, stamp: _Stamp) -> list[Event]:
    """A service an import replaced away: its deployments stop and go, then it does."""
    events = []
    deployments = before.deployments_of(service.name)
    for deployment in deployments:
        if desired_state(deployment) == RUNNING:
            data = _scale_data(deployment, STOPPED)
            events.append(stamp.event(DEPLOYMENT_SCALE, service, data, deployment.id))
    for deployment in deployments:
        data = {"deployment": deployment_document(deployment)}
        events.append(stamp.event(DEPLOYMENT_DELETED, service, data, deployment.id))
    data = {"created": False, "removed": True, "before": _settings(service), "after": None}
    events.append(stamp.event(SERVICE_CHANGED, service, data))
    return events


def _service_events(before: World, after: World, service: Service, stamp: _Stamp) -> list[Event]:
    """One service's events, in the order ``change_events`` promises."""
    old = before.services.get(service.name)
    entry = stamp.entries.get(service.name)
    command: dict[str, Any] = {"command": entry.command, "reason": entry.reason} if entry else {}
    old_deployments = {d.id: d for d in before.deployments_of(service.name)}
    new_deployments = {d.id: d for d in after.deployments_of(service.name)}
    events = _settings_events(old, service, stamp)
    for deployment_id, deployment in new_deployments.items():
        if deployment_id not in old_deployments:
            data = {"deployment": deployment_document(deployment), **command}
            events.append(stamp.event(DEPLOYMENT_APPLIED, service, data, deployment_id))
    events.extend(_rollout_and_traffic_events(old, service, stamp, command))
    events.extend(_scale_events(old_deployments, new_deployments, service, stamp))
    for deployment_id, deployment in old_deployments.items():
        if deployment_id not in new_deployments:
            data = {"deployment": deployment_document(deployment)}
            events.append(stamp.event(DEPLOYMENT_DELETED, service, data, deployment_id))
    return events


def _settings_events(old: Service | None, service: Service, stamp: _Stamp) -> list[Event]:
    """``service.changed`` when the service is new or its domains or routing moved."""
    if old is not None and (old.domains, old.routing) == (service.domains, service.routing):
        return []
    data: dict[str, Any] = {
        "created": old is None,
        "removed": False,
        "before": None if old is None else _settings(old),
        "after": _settings(service),
    }
    return [stamp.event(SERVICE_CHANGED, service, data)]


def _rollout_and_traffic_events(
    old: Service | None, service: Service, stamp: _Stamp, command: dict[str, Any]
) -> list[Event]:
    """The rollout's transition, then the traffic policy's change, each if any."""
    events = []
    kind = _rollout_event_type(old.rollout if old is not None else None, service.rollout)
    if kind is not None:
        assert service.rollout is not None
        data = {"rollout": _rollout(service.rollout), **command}
        events.append(stamp.event(kind, service, data))
    old_policy = old.policy if old is not None else TrafficPolicy()
    if old_policy != service.policy:
        data = {"before": _policy(old_policy), "after": _policy(service.policy), **command}
        events.append(stamp.event(TRAFFIC_CHANGED, service, data))
    return events


def _scale_events(
    old_deployments: dict[str, Deployment],
    new_deployments: dict[str, Deployment],
    service: Service,
    stamp: _Stamp,
) -> list[Event]:
    """``deployment.scale`` for each deployment whose desired state moved; one that
    arrives scaled down never ran, so there is nothing to stop."""
    events = []
    for deployment_id, deployment in new_deployments.items():
        previous = old_deployments.get(deployment_id)
        desired = desired_state(deployment)
        if previous is not None and desired_state(previous) == desired:
            continue
        if previous is None and desired == STOPPED:
            continue
        data = _scale_data(deployment, desired)
        events.append(stamp.event(DEPLOYMENT_SCALE, service, data, deployment_id))
    return events


def _settings(service: Service) -> dict[str, Any]:
    return {"domains": list(service.domains), "routing": routing_to_document(service.routing)}


def nack_event(node: str, type_url: str, version: str, error: str, time: str) -> Event:
    """An Envoy refused a config: no service, no revision; the actor is the node."""
    data = {"node": node, "type": type_url, "version": version, "error": error}
    return Event(FLEET_NACK, None, None, node, time, data)


def hook_test_event(hook: str, actor: str, time: str) -> Event:
    """What ``hooks test`` sends: proves the hook answers, changes nothing."""
    return Event(HOOK_TEST, None, None, actor, time, {"hook": hook})
