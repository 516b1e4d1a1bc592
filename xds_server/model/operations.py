"""The blue-green rules: every operator change as a pure function of the world.

Each operation takes the current ``World`` (and, for rollback, a reader of the
service's history) and returns a ``Change``: the new world, the history entries
it adds and a result for the caller. Every check runs before anything is built,
so a refused operation raises and leaves nothing behind; the store writes a
``Change`` in one transaction.

Changes to a service's policy or to which deployment holds which tag all pass
through ``_commit_picture``, which settles deployment states, bumps the
revision and records history in one place.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from xds_server.errors import InvalidRequest, NotFound, PreconditionFailed
from xds_server.model import rollout as ro
from xds_server.model.names import (
    did_you_mean,
    validate_dns_label,
    validate_domain,
    validate_endpoints,
    validate_header_name,
    validate_labels,
)
from xds_server.model.policy import (
    check_revision,
    picture_problems,
    promote_target,
    routing_problems,
    serving_tag,
    validate_policy,
)
from xds_server.model.state import (
    DEFAULT_SERVICE,
    WILDCARD_DOMAIN,
    Deployment,
    DeploymentState,
    Endpoint,
    HistoryEntry,
    Mirror,
    Picture,
    Routing,
    Service,
    TrafficPolicy,
    World,
)

T = TypeVar("T")

BLUE = "blue"
GREEN = "green"
_OTHER_COLOUR = {BLUE: GREEN, GREEN: BLUE}


@dataclass(frozen=True)
class Context:
    """Who asks, when, and how to name a new deployment: the only inputs from outside."""

    actor: str
    now: str
    command: str
    new_id: Callable[[], str]
    # The same moment in seconds since the epoch: what rollouts count intervals in.
    clock: float = 0.0


@dataclass(frozen=True)
class Change(Generic[T]):
    """What an operation did: the new world, its history entries, a result for the caller,
    and the one service whose rows it changed (the store writes those, nothing else)."""

    world: World
    history: tuple[HistoryEntry, ...]
    result: T
    touched: str = ""


class HistoryReader(Protocol):
    def entry(self, service: str, revision: int) -> HistoryEntry | None:
        """The history entry of that revision, or None."""


@dataclass(frozen=True)
class TagTraffic:
    deployment_id: str
    tag: str
    weight: int


@dataclass(frozen=True)
class MirrorTraffic:
    deployment_id: str
    tag: str
    percent: str


@dataclass(frozen=True)
class Traffic:
    """What ``traffic get`` shows: each tag's deployment and weight, mirrors, revision."""

    service: str
    tags: tuple[TagTraffic, ...]
    mirror: tuple[MirrorTraffic, ...]
    revision: int
    routing: Routing = dataclasses.field(default_factory=Routing)


@dataclass(frozen=True)
class TrafficResult:
    traffic: Traffic
    warnings: tuple[str, ...] = ()
    # Asked for what the service had already: no revision was made.
    unchanged: bool = False


@dataclass(frozen=True)
class ApplyResult:
    deployment: Deployment
    weight: int
    replaced_deployment_id: str | None
    revision: int
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class DomainsResult:
    service: Service
    created: bool


@dataclass(frozen=True)
class ServiceResult:
    """What ``services set`` did: the service now, whether it is new, its revision."""

    service: Service
    created: bool
    changed: bool


@dataclass(frozen=True)
class RoutingChange:
    """Routing settings to change: None leaves a setting as it is, "" removes a header."""

    override_header: str | None = None
    sticky_header: str | None = None
    shadow_header: str | None = None
    mirror_host_suffix: bool | None = None

    def applied_to(self, routing: Routing) -> Routing:
        """``routing`` with these changes, every header name checked."""
        suffix = self.mirror_host_suffix
        updated = Routing(
            override_header=_header(
                "--override-header", self.override_header, routing.override_header
            ),
            sticky_header=_header("--sticky-header", self.sticky_header, routing.sticky_header),
            shadow_header=_header("--shadow-header", self.shadow_header, routing.shadow_header),
            mirror_host_suffix=routing.mirror_host_suffix if suffix is None else suffix,
        )
        problems = routing_problems(updated)
        if problems:
            raise InvalidRequest(problems)
        return updated


def _header(flag: str, change: str | None, current: str | None) -> str | None:
    """A header setting after a change: None keeps ``current``, "" removes it."""
    if change is None:
        return current
    return validate_header_name(flag, change) if change else None


# --- lookups ---------------------------------------------------------------


def get_service(world: World, name: str) -> Service:
    """The named service, or NotFound with the fix."""
    service = world.services.get(name)
    if service is None:
        known = ", ".join(sorted(world.services)) or "none yet"
        raise NotFound(
            f"service {name!r} does not exist (services: {known}): "
            f"{did_you_mean(name, world.services)}"
            f"create it with `xdsctl apply --service {name} --endpoint HOST:PORT`"
        )
    return service


def get_deployment(world: World, deployment_id: str) -> Deployment:
    deployment = world.deployments.get(deployment_id)
    if deployment is None:
        raise NotFound(
            f"deployment {deployment_id!r} does not exist: "
            "list deployments with `xdsctl deployments list`"
        )
    return deployment


def traffic_of(world: World, service_name: str) -> Traffic:
    """The service's traffic as ``traffic get`` shows it."""
    service = get_service(world, service_name)
    holders = dict(world.bindings_of(service_name))
    return Traffic(
        service=service_name,
        tags=tuple(
            TagTraffic(deployment_id=holders[tag], tag=tag, weight=weight)
            for tag, weight in service.policy.weights
        ),
        mirror=tuple(
            MirrorTraffic(deployment_id=holders[m.tag], tag=m.tag, percent=m.percent)
            for m in service.policy.mirrors
        ),
        revision=service.revision,
        routing=service.routing,
    )


# --- the picture: one path for every revision-bumping change -----------------


def _commit_picture(
    world: World, service: Service, after: Picture, ctx: Context, reason: str = ""
) -> tuple[World, HistoryEntry]:
    """Make ``after`` the service's picture: retag and settle its deployments,
    bump the revision and record the history entry.

    A deployment is active exactly when it holds a tag the policy lists; every
    other deployment of the service is scaled down (an untagged one always).
    """
    before = world.picture_of(service.name)
    tag_of = {deployment_id: tag for tag, deployment_id in after.bindings}
    listed = set(after.policy.tags)
    settled = []
    for deployment in world.deployments_of(service.name):
        tag = tag_of.get(deployment.id)
        state = DeploymentState.ACTIVE if tag in listed else DeploymentState.SCALED_DOWN
        if (deployment.tag, deployment.state) != (tag, state):
            deployment = dataclasses.replace(deployment, tag=tag, state=state)
        settled.append(deployment)
    revision = service.revision + 1
    updated = dataclasses.replace(
        service, policy=after.policy, routing=after.routing, revision=revision
    )
    entry = HistoryEntry(
        service=service.name,
        revision=revision,
        time=ctx.now,
        actor=ctx.actor,
        command=ctx.command,
        before=before,
        after=after,
        reason=reason,
    )
    return world.replace(services=[updated], deployments=settled), entry


def same_picture(before: Picture, after: Picture) -> bool:
    """Whether ``after`` routes exactly as ``before``: the tags' order as typed aside
    (it routes nothing: clusters are listed by tag name), so asking again for what a
    service has makes no revision."""
    return (
        dict(before.policy.weights) == dict(after.policy.weights)
        and set(before.policy.mirrors) == set(after.policy.mirrors)
        and (before.bindings, before.routing) == (after.bindings, after.routing)
    )


def _unchanged(
    world: World, service: str, after: Picture, ended_rollout: bool
) -> Change[TrafficResult] | None:
    """The answer to a change that asks for what the service has (and ended no
    rollout): no revision, no history; None when it does change something."""
    if ended_rollout or not same_picture(world.picture_of(service), after):
        return None
    return Change(world, (), TrafficResult(traffic_of(world, service), unchanged=True), service)


def _with_binding(
    bindings: Iterable[tuple[str, str]], tag: str, deployment_id: str
) -> tuple[tuple[str, str], ...]:
    """Bind ``tag`` to ``deployment_id``, taking it from its previous holder."""
    rest = [(t, d) for t, d in bindings if t != tag]
    return tuple(sorted([*rest, (tag, deployment_id)]))


# --- operations ------------------------------------------------------------


def _new_service(world: World, name: str) -> Service:
    """A service made by its first apply; ``default`` answers ``*`` if nobody else does."""
    validate_dns_label("service name", name)
    answers_all = name == DEFAULT_SERVICE and world.domain_owner(WILDCARD_DOMAIN) is None
    return Service(name=name, domains=(WILDCARD_DOMAIN,) if answers_all else ())


def _apply_tag(policy: TrafficPolicy, deployment_tag: str | None, bluegreen: bool) -> str:
    """Which tag a new deployment gets: the one named, the other colour, or the serving tag."""
    if deployment_tag is not None:
        return validate_dns_label("tag", deployment_tag)
    if bluegreen:
        serving = serving_tag(policy, purpose="pick the other colour of")
        if serving is None:
            return BLUE
        if serving not in _OTHER_COLOUR:
            raise PreconditionFailed(
                f"the serving tag is {serving}, not blue or green, so --bluegreen has no "
                "other colour to pick: name the tag with --deployment-tag TAG"
            )
        return _OTHER_COLOUR[serving]
    return serving_tag(policy, purpose="release onto") or BLUE


def apply_deployment(
    world: World,
    ctx: Context,
    *,
    service: str,
    endpoints: Iterable[Endpoint],
    labels: Iterable[tuple[str, str]] = (),
    deployment_tag: str | None = None,
    bluegreen: bool = False,
    if_revision: int | None = None,
    in_place: bool = False,
) -> Change[ApplyResult]:
    """Register a deployment and bind it to a tag (``xdsctl apply``).

    The first deployment of a service without traffic gets 100%. A tag the
    policy does not list joins it at weight 0. A tag that carries traffic would
    hand that traffic to the new deployment at once (an in-place release): refused
    unless ``in_place``, since it sends real traffic to a build nothing has judged.
    """
    if deployment_tag is not None and bluegreen:
        raise InvalidRequest("--deployment-tag and --bluegreen exclude each other: give one")
    endpoints = validate_endpoints(endpoints)
    labels = validate_labels(labels)
    existing = world.services.get(service)
    svc = existing or _new_service(world, service)
    check_revision(svc, if_revision)
    tag = _apply_tag(svc.policy, deployment_tag, bluegreen)
    _refuse_rollout_tag(svc, tag)

    deployment = Deployment(
        id=ctx.new_id(), service=service, created_at=ctx.now, endpoints=endpoints, labels=labels
    )
    world = world.replace(services=[svc], deployments=[deployment])
    before = world.picture_of(service)
    replaced = before.holder_of(tag)
    _refuse_moving_traffic(svc, tag, replaced, deployment_tag, bluegreen, in_place)
    policy = svc.policy
    if not policy.weights:
        policy = TrafficPolicy(weights=((tag, 100),))
    elif policy.weight_of(tag) is None:
        policy = dataclasses.replace(policy, weights=(*policy.weights, (tag, 0)))
    after = dataclasses.replace(
        before, policy=policy, bindings=_with_binding(before.bindings, tag, deployment.id)
    )
    world, entry = _commit_picture(world, svc, after, ctx)

    weight = policy.weight_of(tag) or 0
    result = ApplyResult(
        deployment=world.deployments[deployment.id],
        weight=weight,
        replaced_deployment_id=replaced,
        revision=entry.revision,
        warnings=_apply_warnings(world, world.deployments[deployment.id], weight, replaced),
    )
    return Change(world=world, history=(entry,), result=result, touched=service)


def _refuse_moving_traffic(
    svc: Service,
    tag: str,
    replaced: str | None,
    deployment_tag: str | None,
    bluegreen: bool,
    in_place: bool,
) -> None:
    """An apply onto a tag that carries traffic moves that traffic to an unproven build
    at once: only with ``in_place``, and the refusal says how to release beside it."""
    weight = svc.policy.weight_of(tag) or 0
    if replaced is None or weight == 0 or in_place:
        return
    how = "--bluegreen" if deployment_tag is not None else f"--deployment-tag TAG (not {tag})"
    if bluegreen:
        why = f"--bluegreen picks {tag}, the other colour, which carries {weight}% (a canary)"
        beside = "finish or undo the canary first (`xdsctl traffic promote` or `traffic set`)"
    else:
        why = f"tag {tag} carries {weight}% of service {svc.name}'s traffic"
        beside = f"release beside it with {how} and move traffic with `xdsctl traffic set`"
    raise PreconditionFailed(
        f"{why}: this apply would hand it to the new deployment at once, untested; "
        f"{beside}, or pass --in-place to replace deployment {replaced} now"
    )


def _refuse_rollout_tag(svc: Service, tag: str) -> None:
    """A running rollout's canary and stable tags keep their deployments: a new build
    there would take traffic no verdict has judged."""
    rollout = svc.rollout
    if rollout is None or not rollout.running:
        return
    if tag not in (rollout.spec.canary, rollout.spec.stable):
        return
    role = "canary" if tag == rollout.spec.canary else "stable tag"
    raise PreconditionFailed(
        f"tag {tag} is the {role} of the rollout running on service {svc.name} "
        f"({rollout.phase}, {rollout.spec.describe(rollout.step)}): abort it first with "
        f"`xdsctl rollout abort --service {svc.name}`, or apply to another tag "
        "with --deployment-tag TAG"
    )


def _apply_warnings(
    world: World, deployment: Deployment, weight: int, replaced: str | None
) -> tuple[str, ...]:
    """What an operator should hear about an apply that succeeded."""
    service, tag = deployment.service, deployment.tag
    warnings = []
    if replaced is not None and weight > 0:
        warnings.append(
            f"in-place release: deployment {deployment.id} takes tag {tag}'s {weight}% of "
            f"traffic now from deployment {replaced}, which is scaled down; "
            f"undo with `xdsctl traffic rollback --service {service}`"
        )
    if not world.services[service].domains:
        warnings.append(
            f"service {service} answers no domain yet, so Envoy does not route it: "
            f"give it one with `xdsctl services set {service} --domain HOST`"
        )
    return tuple(warnings)


def set_traffic(
    world: World,
    ctx: Context,
    *,
    service: str,
    weights: Iterable[tuple[str, int]],
    mirrors: Iterable[Mirror] = (),
    sticky_header: str | None = None,
    if_revision: int | None = None,
    force: bool = False,
) -> Change[TrafficResult]:
    """Replace the policy (``xdsctl traffic set``): tags left out are scaled down.

    ``sticky_header`` makes the split sticky by that header ("" ends it); left
    None, the service keeps what it had.
    """
    asked = get_service(world, service)
    world, svc, aborted = _manual_change(world, ctx, asked, force, if_revision)
    policy = TrafficPolicy(weights=tuple(weights), mirrors=tuple(mirrors))
    bindings = world.bindings_of(service)
    validate_policy(policy, (tag for tag, _ in bindings), service)
    routing = RoutingChange(sticky_header=sticky_header).applied_to(svc.routing)
    after = Picture(policy=policy, bindings=bindings, routing=routing)
    if unchanged := _unchanged(world, service, after, svc is not asked):
        return unchanged
    world, entry = _commit_picture(world, svc, after, ctx)
    dropped = [tag for tag in svc.policy.tags if tag not in policy.tags]
    warnings = [f"scaled down: {', '.join(dropped)} (left out of --tags)"] if dropped else []
    result = TrafficResult(traffic_of(world, service), (*_aborted_warning(aborted), *warnings))
    return Change(world, (*aborted, entry), result, service)


def promote(
    world: World,
    ctx: Context,
    *,
    service: str,
    to_tag: str | None = None,
    if_revision: int | None = None,
    force: bool = False,
) -> Change[TrafficResult]:
    """Send 100% to the other tag (``xdsctl traffic promote``).

    Every other tag stays listed at weight 0, still running, so promoting
    again is an instant rollback. Mirrors are cleared.
    """
    world, svc, aborted = _manual_change(
        world, ctx, get_service(world, service), force, if_revision
    )
    target = promote_target(svc.policy, to_tag, service)
    weights = tuple((tag, 100 if tag == target else 0) for tag in svc.policy.tags)
    after = dataclasses.replace(world.picture_of(service), policy=TrafficPolicy(weights=weights))
    world, entry = _commit_picture(world, svc, after, ctx)
    warnings = ["mirror cleared"] if svc.policy.mirrors else []
    result = TrafficResult(traffic_of(world, service), (*_aborted_warning(aborted), *warnings))
    return Change(world, (*aborted, entry), result, service)


def _manual_change(
    world: World, ctx: Context, svc: Service, force: bool, if_revision: int | None
) -> tuple[World, Service, tuple[HistoryEntry, ...]]:
    """Clear the way for an operator's own traffic change: refused while a rollout moves
    the service's traffic, unless ``force``, which aborts the rollout first as a revision
    of its own. A paused rollout ends where the operator takes over (no revision)."""
    check_revision(svc, if_revision)
    rollout = svc.rollout
    if rollout is not None and rollout.phase is ro.Phase.PAUSED:
        ended = ro.ended_by_hand(rollout, ctx.command, ctx.clock)
        world, _ = _rollout_changed(world, ctx, svc, ended)
        return world, world.services[svc.name], ()
    if rollout is None or rollout.phase not in (ro.Phase.PROGRESSING, ro.Phase.HOLDING):
        return world, svc, ()
    if not force:
        raise PreconditionFailed(
            f"a rollout of {rollout.spec.canary} is moving service {svc.name}'s traffic "
            f"({rollout.spec.describe(rollout.step)}, {rollout.spec.canary} at "
            f"{rollout.percent}%): pause it (`xdsctl rollout pause --service {svc.name}`) "
            f"or abort it (`xdsctl rollout abort --service {svc.name}`) first, or pass "
            "--force to abort it and make this change"
        )
    reason = f"aborted by --force, for `{ctx.command}`"
    aborted = ro.abort(rollout, reason, ctx.clock, cause="force")
    world, history = _rollout_changed(world, ctx, svc, aborted)
    return world, world.services[svc.name], history


def _aborted_warning(aborted: tuple[HistoryEntry, ...]) -> tuple[str, ...]:
    return tuple(f"rollout {entry.reason} (revision {entry.revision})" for entry in aborted)


def _rollback_picture(
    history: HistoryReader, svc: Service, to_revision: int | None, skip: int = 0
) -> tuple[Picture, str]:
    """The picture to restore, and how to name it in a refusal; ``skip``: revisions just
    made in this same change, which "the latest change" passes over."""
    if to_revision is None:
        latest = history.entry(svc.name, svc.revision - skip)
        if latest is None or svc.revision - skip <= 1:
            raise PreconditionFailed(
                f"nothing to roll back: service {svc.name} has had no change "
                "since its first deployment"
            )
        return latest.before, f"the picture before revision {svc.revision - skip}"
    if to_revision == svc.revision:
        raise PreconditionFailed(
            f"service {svc.name} is at revision {to_revision} already: nothing to roll back"
        )
    entry = history.entry(svc.name, to_revision) if to_revision >= 1 else None
    if entry is None:
        raise NotFound(
            f"service {svc.name} has no revision {to_revision} (revisions 1 to {svc.revision}): "
            "see `xdsctl traffic history`"
        )
    return entry.after, f"revision {to_revision}"


def _restorable(world: World, svc: Service, picture: Picture, what: str) -> Picture:
    """``picture`` with the bindings that can still hold, once it passes every rule a
    ``traffic set`` would: history can be old, or imported from a hand-edited file."""
    listed = set(picture.policy.tags)
    missing = [d for t, d in picture.bindings if t in listed and d not in world.deployments]
    if missing:
        raise PreconditionFailed(
            f"cannot roll back: deployment {', '.join(missing)}, which that revision "
            "routes traffic to, no longer exists; set the traffic with `xdsctl traffic set`"
        )
    # A deployment that was bound but scaled down then is not needed.
    bindings = tuple((t, d) for t, d in picture.bindings if d in world.deployments)
    restored = dataclasses.replace(picture, bindings=bindings)
    problems = picture_problems(world, svc.name, restored)
    if not picture.policy.weights:
        problems.append("it has no traffic policy")
    if problems:
        raise PreconditionFailed(
            f"cannot roll back service {svc.name} to {what}: {'; '.join(problems)}; "
            "nothing was changed: set the traffic with `xdsctl traffic set` instead"
        )
    return restored


def rollback(
    world: World,
    history: HistoryReader,
    ctx: Context,
    *,
    service: str,
    to_revision: int | None = None,
    if_revision: int | None = None,
    force: bool = False,
) -> Change[TrafficResult]:
    """Restore a whole earlier picture as a new revision (``xdsctl traffic rollback``).

    Without ``to_revision`` that is the picture before the latest change, so a
    second rollback undoes the first.
    """
    asked = get_service(world, service)
    world, svc, aborted = _manual_change(world, ctx, asked, force, if_revision)
    # With --force, "the latest change" is the one before the abort just made.
    picture, what = _rollback_picture(history, svc, to_revision, skip=len(aborted))
    picture = _restorable(world, svc, picture, what)
    if unchanged := _unchanged(world, service, picture, svc is not asked):
        return unchanged
    world, entry = _commit_picture(world, svc, picture, ctx)
    result = TrafficResult(traffic_of(world, service), _aborted_warning(aborted))
    return Change(world, (*aborted, entry), result, service)


def set_endpoints(
    world: World, *, deployment_id: str, endpoints: Iterable[Endpoint]
) -> Change[Deployment]:
    """Replace a deployment's endpoints (it scaled); no revision, no history."""
    deployment = get_deployment(world, deployment_id)
    updated = dataclasses.replace(deployment, endpoints=validate_endpoints(endpoints))
    return Change(world.replace(deployments=[updated]), (), updated, deployment.service)


def delete_deployment(world: World, *, deployment_id: str) -> Change[Deployment]:
    """Forget a scaled-down deployment; an active one is refused."""
    deployment = get_deployment(world, deployment_id)
    if deployment.state is DeploymentState.ACTIVE:
        raise PreconditionFailed(
            f"deployment {deployment_id} is active with tag {deployment.tag}: scale it down "
            f"first by leaving {deployment.tag} out of `xdsctl traffic set --tags ...`"
        )
    world = world.replace(removed=[deployment_id])
    return Change(world, (), deployment, deployment.service)


def set_domains(world: World, *, service: str, domains: Iterable[str]) -> Change[DomainsResult]:
    """Replace the domains a service answers (``SetServiceDomains``; created if new)."""
    validate_dns_label("service name", service)
    wanted = _checked_domains(world, service, domains)
    existing = world.services.get(service)
    svc = dataclasses.replace(existing or Service(name=service), domains=wanted)
    world = world.replace(services=[svc])
    return Change(world, (), DomainsResult(service=svc, created=existing is None), service)


def _checked_domains(world: World, service: str, domains: Iterable[str]) -> tuple[str, ...]:
    """The domains, each in normal form, once they pass the rules.

    Envoy rejects the whole route table when two virtual hosts share a domain
    or two hold ``*``, so each domain belongs to exactly one service.
    """
    wanted = [validate_domain(domain) for domain in domains]
    if not wanted:
        raise InvalidRequest("give at least one --domain, e.g. --domain shop.example.com")
    problems = []
    for domain in dict.fromkeys(wanted):
        if wanted.count(domain) > 1:
            problems.append(f"domain {domain} is given twice: give each domain once")
        owner = world.domain_owner(domain)
        if owner is not None and owner != service:
            what = "answers every host (*)" if domain == WILDCARD_DOMAIN else f"holds {domain}"
            problems.append(
                f"service {owner} {what} already and a domain belongs to one service: "
                f"remove it there first with `xdsctl services set {owner} --domain ...`"
            )
    if problems:
        raise InvalidRequest(problems)
    return tuple(wanted)


def configure_service(
    world: World,
    ctx: Context,
    *,
    service: str,
    domains: Iterable[str] = (),
    routing: RoutingChange = RoutingChange(),
    if_revision: int | None = None,
) -> Change[ServiceResult]:
    """Change a service's domains and routing settings (``xdsctl services set``).

    Domains given replace the service's; none given leaves them. A routing change
    is a new revision (history records it, rollback restores it); settings equal
    to what the service has change nothing, so they make no revision.
    """
    validate_dns_label("service name", service)
    wanted = tuple(domains)
    if not wanted and routing == RoutingChange():
        raise InvalidRequest(
            "give a setting to change: --domain HOST, --override-header NAME, "
            "--shadow-header NAME, --[no-]mirror-host-suffix (see `xdsctl services set --help`)"
        )
    existing = world.services.get(service)
    svc = existing or Service(name=service)
    check_revision(svc, if_revision)
    new_domains = _checked_domains(world, service, wanted) if wanted else svc.domains
    new_routing = routing.applied_to(svc.routing)
    moved = new_domains != svc.domains
    if moved or existing is None:
        svc = dataclasses.replace(svc, domains=new_domains)
        world = world.replace(services=[svc])
    history: tuple[HistoryEntry, ...] = ()
    if new_routing != svc.routing:
        after = dataclasses.replace(world.picture_of(service), routing=new_routing)
        world, entry = _commit_picture(world, svc, after, ctx)
        history = (entry,)
    result = ServiceResult(
        service=world.services[service],
        created=existing is None,
        changed=existing is None or moved or bool(history),
    )
    return Change(world, history, result, service)


# --- rollouts --------------------------------------------------------------------------


@dataclass(frozen=True)
class RolloutResult:
    """A rollout after a command, and the traffic it left."""

    rollout: ro.Rollout
    traffic: Traffic
    revision: int


def rollout_weights(policy: TrafficPolicy, spec: ro.RolloutSpec, percent: int) -> TrafficPolicy:
    """The canary at ``percent``, the stable tag at the rest, every other listed tag at 0;
    mirrors kept unless their target now gets all traffic (a mirror then shadows nothing)."""
    weights = [(tag, 0) for tag in policy.tags if tag not in (spec.stable, spec.canary)]
    weights = sorted([*weights, (spec.stable, 100 - percent), (spec.canary, percent)])
    shares = dict(weights)
    mirrors = tuple(m for m in policy.mirrors if shares.get(m.tag, 0) < 100)
    return TrafficPolicy(weights=tuple(weights), mirrors=mirrors)


def _rollout_changed(
    world: World, ctx: Context, svc: Service, transition: ro.Transition
) -> tuple[World, tuple[HistoryEntry, ...]]:
    """Store the rollout's new state; a new canary share is a revision whose history entry
    carries the reason, anything else changes the service's record only."""
    held = dataclasses.replace(svc, rollout=transition.rollout)
    if transition.percent is None:
        return world.replace(services=[held]), ()
    policy = rollout_weights(svc.policy, transition.rollout.spec, transition.percent)
    if transition.rollout.phase is ro.Phase.ABORTED:
        policy = dataclasses.replace(policy, mirrors=())  # an abort leaves only the stable
    if policy == svc.policy:
        return world.replace(services=[held]), ()
    after = dataclasses.replace(world.picture_of(svc.name), policy=policy)
    world, entry = _commit_picture(world, held, after, ctx, transition.reason)
    return world, (entry,)


def rollout_of(world: World, service: str) -> RolloutResult:
    """The service's rollout (running or last) as ``rollout status`` shows it."""
    svc = get_service(world, service)
    if svc.rollout is None:
        raise NotFound(
            f"service {service} has had no rollout: start one with `xdsctl rollout start "
            f"--service {service} --to TAG --steps 5,25,50,100`"
        )
    return RolloutResult(svc.rollout, traffic_of(world, service), svc.revision)


def _rollout_result(
    world: World, service: str, history: tuple[HistoryEntry, ...]
) -> Change[RolloutResult]:
    svc = world.services[service]
    assert svc.rollout is not None
    result = RolloutResult(svc.rollout, traffic_of(world, service), svc.revision)
    return Change(world, history, result, service)


def start_rollout(
    world: World,
    ctx: Context,
    *,
    service: str,
    spec: ro.RolloutSpec,
) -> Change[RolloutResult]:
    """Start moving ``spec.canary`` up from the serving tag (``xdsctl rollout start``).

    ``spec.stable`` is ignored: the stable tag is the serving tag now.
    """
    svc = get_service(world, service)
    running = svc.rollout
    if running is not None and running.running:
        raise PreconditionFailed(
            f"a rollout of {running.spec.canary} is running on service {service} already "
            f"({running.phase}, {running.spec.describe(running.step)}): one at a time; "
            f"abort it first with `xdsctl rollout abort --service {service}`"
        )
    stable = serving_tag(svc.policy, purpose="roll out from")
    if stable is None:
        raise PreconditionFailed(
            f"service {service} has no traffic yet, so there is no stable tag to roll out "
            f"from: set some with `xdsctl traffic set --service {service} --tags TAG=100`"
        )
    validate_dns_label("tag", spec.canary)
    held = dict(world.bindings_of(service))
    if spec.canary not in held:
        raise PreconditionFailed(
            f"no deployment of service {service} holds tag {spec.canary} (tags held: "
            f"{', '.join(sorted(held)) or 'none'}): tag one first with `xdsctl apply "
            f"--service {service} --deployment-tag {spec.canary} --endpoint HOST:PORT`"
        )
    spec = ro.check_spec(dataclasses.replace(spec, stable=stable))
    world, history = _rollout_changed(world, ctx, svc, ro.begin(spec, ctx.clock))
    return _rollout_result(world, service, history)


RolloutStep = Callable[[ro.Rollout], ro.Transition]


def step_rollout(
    world: World, ctx: Context, *, service: str, step: RolloutStep
) -> Change[RolloutResult]:
    """Apply one transition (pause, resume, promote, abort, a judgement) to the service's
    rollout, refused when it has none."""
    svc = get_service(world, service)
    if svc.rollout is None:
        raise PreconditionFailed(
            f"service {service} has no rollout: start one with `xdsctl rollout start "
            f"--service {service} --to TAG --steps 5,25,50,100`"
        )
    world, history = _rollout_changed(world, ctx, svc, step(svc.rollout))
    return _rollout_result(world, service, history)


def judge_rollout(
    world: World,
    ctx: Context,
    *,
    service: str,
    expected: tuple[int, float],
    canary: ro.Figures,
    stable: ro.Figures | None,
) -> Change[RolloutResult]:
    """The driver's judgement of an interval, applied only if the rollout is still at the
    step and check time it judged (another replica, or an operator, may have moved it)."""

    def judged(rollout: ro.Rollout) -> ro.Transition:
        if (rollout.step, rollout.next_check_at) != expected or not ro.due(rollout, ctx.clock):
            raise PreconditionFailed("the rollout moved on before this judgement was applied")
        return ro.judge(rollout, canary, stable, ctx.clock)

    return step_rollout(world, ctx, service=service, step=judged)
