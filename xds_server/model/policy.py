"""The rules a service's traffic picture keeps: its policy (weights, mirrors, the
serving tag, what ``promote`` targets) and its tag bindings. Pure checks shared by
the operations, the whole-world invariants and state import."""

from __future__ import annotations

from collections.abc import Iterable

from xds_server.errors import InvalidRequest, PreconditionFailed, RevisionConflict
from xds_server.ids import is_deployment_id
from xds_server.model.names import (
    MAX_WEIGHT,
    did_you_mean,
    validate_dns_label,
    validate_header_name,
)
from xds_server.model.state import Picture, Routing, Service, TrafficPolicy, World


def _format_weights(weights: Iterable[tuple[str, int]]) -> str:
    return ", ".join(f"{tag}={weight}" for tag, weight in weights)


def serving_tag(policy: TrafficPolicy, *, purpose: str) -> str | None:
    """The tag with the highest weight, None for a service without traffic.

    A tie (e.g. 50/50) has no serving tag: refused, naming ``purpose``.
    """
    tops = policy.serving_tags()
    if len(tops) > 1:
        share = policy.weight_of(tops[0])
        raise PreconditionFailed(
            f"tags {' and '.join(tops)} both carry {share}% of traffic, so there is no "
            f"single serving tag to {purpose}: {_tie_fix(purpose)}"
        )
    return tops[0] if tops else None


def _tie_fix(purpose: str) -> str:
    if purpose == "promote from":
        return "name the tag to send all traffic to with `xdsctl traffic promote --to TAG`"
    return "name the tag with --deployment-tag TAG"


def check_revision(service: Service, if_revision: int | None) -> None:
    """Compare-and-set: refuse when the service is not at ``if_revision``."""
    if if_revision is not None and service.revision != if_revision:
        raise RevisionConflict(
            f"service {service.name} is at revision {service.revision}, not {if_revision}: "
            "someone changed it meanwhile; check with `xdsctl traffic get` "
            f"and retry with --if-revision {service.revision}"
        )


def validate_policy(policy: TrafficPolicy, held_tags: Iterable[str], service: str) -> None:
    """Check a policy against the rules; collects every problem into one error."""
    problems: list[str] = []
    held = sorted(set(held_tags))
    if not policy.weights:
        problems.append("--tags needs at least one TAG=WEIGHT pair, e.g. --tags blue=100")
    seen: set[str] = set()
    for tag, weight in policy.weights:
        try:
            validate_dns_label("tag", tag)
        except InvalidRequest as error:
            problems.extend(error.problems)
            continue
        if tag in seen:
            problems.append(f"tag {tag} is listed twice in --tags: list each tag once")
        seen.add(tag)
        # type(), not isinstance(): True is an int to Python, never a weight.
        if type(weight) is not int:
            problems.append(
                f"weight of {tag} must be a whole number from 0 to {MAX_WEIGHT} (got {weight!r})"
            )
        elif not 0 <= weight <= MAX_WEIGHT:
            problems.append(f"weight of {tag} must be from 0 to {MAX_WEIGHT} (got {weight})")
        if tag not in held:
            problems.append(
                f"no deployment of service {service} holds tag {tag} "
                f"(tags held: {', '.join(held) or 'none'}): {did_you_mean(tag, held)}"
                "tag one first with "
                f"`xdsctl apply --service {service} --deployment-tag {tag} --endpoint HOST:PORT`"
            )
    total = sum(weight for _, weight in policy.weights if type(weight) is int)
    if policy.weights and total != 100:
        problems.append(
            f"weights must add up to 100 (got {_format_weights(policy.weights)} = {total})"
        )
    weights = dict(policy.weights)
    mirrored: set[str] = set()
    for mirror in policy.mirrors:
        if type(mirror.hundredths) is not int or not 0 < mirror.hundredths <= 100 * 100:
            problems.append(
                f"mirror percent for {mirror.tag} must be above 0 and at most 100 "
                f"(got {mirror.hundredths!r} hundredths)"
            )
        if mirror.tag in mirrored:
            problems.append(f"mirror target {mirror.tag} is given twice: give each target once")
        mirrored.add(mirror.tag)
        if mirror.tag not in weights:
            problems.append(
                f"mirror target {mirror.tag} is not in --tags: list it, at weight 0 to keep it "
                f"running without primary traffic (e.g. --tags {_format_weights(policy.weights)},"
                f"{mirror.tag}=0)"
            )
        elif weights[mirror.tag] == 100:
            problems.append(
                f"mirror target {mirror.tag} already gets 100% of traffic: "
                "mirror to a tag with less weight"
            )
    if problems:
        raise InvalidRequest(problems)


def promote_target(policy: TrafficPolicy, to_tag: str | None, service: str) -> str:
    """The tag ``traffic promote`` sends all traffic to."""
    serving = serving_tag(policy, purpose="promote from") if to_tag is None else None
    if to_tag is not None:
        validate_dns_label("tag", to_tag)
        if policy.weight_of(to_tag) is None:
            raise PreconditionFailed(
                f"tag {to_tag} is not in the traffic policy of service {service} "
                f"(tags: {', '.join(policy.tags) or 'none'}): add it with "
                f"`xdsctl traffic set` first, or promote to one of those"
            )
        if policy.weight_of(to_tag) == 100:
            raise PreconditionFailed(f"tag {to_tag} already carries 100% of traffic")
        return to_tag
    others = [tag for tag in policy.tags if tag != serving]
    if len(others) != 1:
        if not others:
            raise PreconditionFailed(
                f"nothing to promote to: the policy of service {service} holds only "
                f"{serving or 'no tag'}; release a new deployment with "
                f"`xdsctl apply --service {service} --bluegreen --endpoint HOST:PORT` first"
            )
        raise PreconditionFailed(
            f"the policy of service {service} has several other tags ({', '.join(others)}): "
            "say which one gets all traffic with `xdsctl traffic promote --to TAG`"
        )
    return others[0]


def routing_problems(routing: Routing, *, as_flags: bool = True) -> list[str]:
    """What is wrong with a service's routing settings: each header name, and an
    override header that is also the shadow header (a shadow would carry "1" as a
    tag name, and a request naming a tag would look like a shadow). Names are the
    CLI's flags, or with ``as_flags=False`` the stored fields (``routing.sticky_header``)."""
    problems: list[str] = []
    for field, name in (
        ("override_header", routing.override_header),
        ("sticky_header", routing.sticky_header),
        ("shadow_header", routing.shadow_header),
    ):
        if name is not None:
            label = "--" + field.replace("_", "-") if as_flags else f"routing.{field}"
            try:
                validate_header_name(label, name)
            except InvalidRequest as error:
                problems.extend(error.problems)
    if type(routing.mirror_host_suffix) is not bool:
        problems.append(
            f"mirror_host_suffix must be true or false (got {routing.mirror_host_suffix!r})"
        )
    if routing.override_header is not None and routing.override_header == routing.shadow_header:
        problems.append(
            f"header {routing.override_header} cannot be both the override header and the "
            "shadow header: pick another name for one of them"
        )
    return problems


def picture_problems(world: World, service: str, picture: Picture) -> list[str]:
    """What is wrong with a picture (from history) as ``service``'s: its bindings, and
    its policy against the rules a ``traffic set`` would apply (an empty policy, the
    first revision's "before", passes)."""
    problems = binding_problems(world, service, picture.bindings)
    problems.extend(routing_problems(picture.routing, as_flags=False))
    if picture.policy.weights:
        try:
            validate_policy(picture.policy, (tag for tag, _ in picture.bindings), service)
        except InvalidRequest as error:
            problems.extend(error.problems)
    elif picture.policy.mirrors:
        problems.append("has mirrors but no weights")
    return problems


def binding_problems(world: World, service: str, bindings: Iterable[tuple[str, str]]) -> list[str]:
    """What is wrong with (tag, deployment id) bindings for ``service``: each tag and
    each deployment once, and only the service's own deployments."""
    problems: list[str] = []
    tags: set[str] = set()
    held: set[str] = set()
    for tag, deployment_id in bindings:
        try:
            validate_dns_label("tag", tag)
        except InvalidRequest as error:
            problems.extend(error.problems)
        if not isinstance(deployment_id, str) or not is_deployment_id(deployment_id):
            problems.append(f"tag {tag} is bound to {deployment_id!r}, not a deployment id")
            continue
        if tag in tags:
            problems.append(f"tag {tag} is bound twice")
        if deployment_id in held:
            problems.append(f"deployment {deployment_id} holds two tags")
        tags.add(tag)
        held.add(deployment_id)
        owner = world.deployments.get(deployment_id)
        if owner is not None and owner.service != service:
            problems.append(
                f"tag {tag} is bound to deployment {deployment_id} of service {owner.service}"
            )
    return problems
