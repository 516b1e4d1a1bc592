"""The whole state as one JSON document (``xdsctl state export`` / ``import``), and back.

Loading validates everything before anything is written, and names where each
problem is (a JSON path): the shape (strict types, no unknown fields, no key
twice in one object), the world with the operator API's own rules
(``world_from_parsed``), each history entry against it (a known service, a
unique revision within the service's, a picture a rollback could restore) and
the tokens (unique names and hashes, an admin among them) and the hooks (each
checked as ``hooks add`` checks it).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from pydantic import Field, ValidationError

from xds_server.auth.tokens import check_admin_remains, token_from_document, token_to_document
from xds_server.errors import InvalidRequest
from xds_server.model.hooks import OMITTED_SECRET, Hook, new_hook
from xds_server.model.invariants import summary
from xds_server.model.policy import picture_problems
from xds_server.model.state import HistoryEntry, Mirror, Picture, TrafficPolicy, World
from xds_server.model.world_document import (
    MAX_REVISION,
    RoutingDocument,
    StrictDocument,
    WorldDocument,
    shape_problems,
    world_from_parsed,
    world_to_document,
)
from xds_server.store import codec
from xds_server.store.base import StateDump

FORMAT = "xds_server-state/v1"
# A refusal lists this many problems at most.
SHOWN_PROBLEMS = 20


class PictureDocument(StrictDocument):
    weights: list[tuple[str, int]]
    mirrors: list[tuple[str, int]]  # (tag, hundredths of a percent)
    bindings: list[tuple[str, str]]  # (tag, deployment id)
    # Left out in exports made before routing settings existed: the defaults.
    routing: RoutingDocument = RoutingDocument()


class HistoryDocument(StrictDocument):
    service: str
    revision: int = Field(ge=1, le=MAX_REVISION)
    time: str
    actor: str
    command: str
    before: PictureDocument
    after: PictureDocument
    reason: str = ""


class TokenDocument(StrictDocument):
    name: str
    role: str
    sha256: str
    created_at: str
    created_by: str


class HookDocument(StrictDocument):
    name: str
    url: str = ""
    command: list[str] = Field(default_factory=list)
    events: list[str]
    timeout_s: float
    created_at: str
    created_by: str
    # Whether deliveries are signed; the secret itself only with --include-secrets.
    signed: bool = False
    secret: str | None = None


class StateDocument(StrictDocument):
    format: Literal["xds_server-state/v1"]
    world: WorldDocument
    history: list[HistoryDocument] = Field(default_factory=list)
    tokens: list[TokenDocument] = Field(default_factory=list)
    # Left out in exports made before hooks existed: an import keeps the store's hooks.
    hooks: list[HookDocument] | None = None


def _hook_document(hook: Hook, include_secrets: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": hook.name,
        "url": hook.url,
        "command": list(hook.command),
        "events": list(hook.events),
        "timeout_s": hook.timeout_s,
        "created_at": hook.created_at,
        "created_by": hook.created_by,
        "signed": bool(hook.secret),
    }
    if include_secrets and hook.secret:
        document["secret"] = hook.secret
    return document


def _hooks(items: list[HookDocument], problems: list[str]) -> tuple[Hook, ...]:
    hooks = []
    for index, item in enumerate(items):
        try:
            hook = new_hook(
                name=item.name,
                url=item.url,
                command=item.command,
                secret=item.secret or "",
                events=item.events,
                timeout_s=item.timeout_s,
                created_at=item.created_at,
                created_by=item.created_by,
            )
        except InvalidRequest as error:
            problems.append(f"$.hooks[{index}]: {error}")
            continue
        if item.signed and item.secret is None:
            hook = dataclasses.replace(hook, secret=OMITTED_SECRET)
        elif item.secret is not None and not item.signed:
            problems.append(f"$.hooks[{index}]: has a secret but says signed: false")
        hooks.append(hook)
    names = [h.name for h in hooks]
    if len(set(names)) != len(names):
        problems.append("$.hooks: two hooks with one name: give each its own")
    return tuple(hooks)


def state_to_json(dump: StateDump, include_secrets: bool = False) -> str:
    """The document; hooks' secrets only with ``include_secrets`` (else only ``signed``)."""
    document = {
        "format": FORMAT,
        "world": world_to_document(dump.world),
        "history": [
            {
                "service": e.service,
                "revision": e.revision,
                "time": e.time,
                "actor": e.actor,
                "command": e.command,
                "before": json.loads(codec.encode_picture(e.before)),
                "after": json.loads(codec.encode_picture(e.after)),
                "reason": e.reason,
            }
            for e in dump.history
        ],
        "tokens": [token_to_document(t) for t in dump.tokens],
    }
    if dump.hooks is not None:
        document["hooks"] = [_hook_document(h, include_secrets) for h in dump.hooks]
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _refused(problems: list[str]) -> InvalidRequest:
    listed = summary(problems, SHOWN_PROBLEMS)
    return InvalidRequest(
        f"the state document is not valid, so nothing was imported: {listed}. Fix the "
        "document (or export a fresh one with `xdsctl state export`) and import it again"
    )


def _no_key_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` keeps the last of two equal keys silently; a document must not."""
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise InvalidRequest(
                f"the key {key!r} appears twice in one object of the state document: "
                "keep one (JSON keeps only the last, silently)"
            )
    return dict(pairs)


def state_from_json(text: str) -> StateDump:
    """Parse and validate an exported document; ``InvalidRequest`` names what is wrong."""
    try:
        document = json.loads(text, object_pairs_hook=_no_key_twice)
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"the state document is not JSON: {error}") from error
    except InvalidRequest as error:
        raise _refused(error.problems) from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise InvalidRequest(
            f"the state document's format is {found!r}, expected {FORMAT!r}: "
            "import a file made by `xdsctl state export`"
        )
    try:
        parsed = StateDocument.model_validate_json(text)
    except ValidationError as error:
        # A hook's value may be its secret: never echoed (the reply, the log).
        raise _refused(shape_problems(error, unshown=("hooks",))) from error
    try:
        world = world_from_parsed(parsed.world, "$.world")
    except InvalidRequest as error:
        raise _refused(error.problems) from error
    problems: list[str] = []
    history = _history(parsed.history, world, problems)
    tokens = []
    for index, item in enumerate(parsed.tokens):
        try:
            tokens.append(token_from_document(item.model_dump()))
        except (InvalidRequest, ValueError) as error:
            problems.append(f"$.tokens[{index}]: {error}")
    for field in ("name", "sha256"):
        values = [getattr(t, field) for t in tokens]
        if len(set(values)) != len(values):
            problems.append(f"$.tokens: two tokens with one {field}: give each its own")
    if tokens and not problems:
        try:
            check_admin_remains(tuple(tokens), "the tokens include no admin token", InvalidRequest)
        except InvalidRequest as error:
            problems.append(f"$.tokens: {error}")
    hooks = _hooks(parsed.hooks, problems) if parsed.hooks is not None else None
    if problems:
        raise _refused(problems)
    return StateDump(world=world, history=tuple(history), tokens=tuple(tokens), hooks=hooks)


def _history(items: list[HistoryDocument], world: World, problems: list[str]) -> list[HistoryEntry]:
    entries = []
    seen: dict[tuple[str, int], int] = {}
    for index, item in enumerate(items):
        key = (item.service, item.revision)
        where = f"$.history[{index}] (service {item.service}, revision {item.revision})"
        service = world.services.get(item.service)
        if service is None:
            problems.append(f"{where}: names a service the world does not hold")
            continue
        if key in seen:
            problems.append(f"{where}: appears twice (also at $.history[{seen[key]}])")
            continue
        seen[key] = index
        if item.revision > service.revision:
            problems.append(
                f"{where}: is beyond the service's revision {service.revision} "
                f"(history holds revisions 1 to {service.revision})"
            )
        entry = HistoryEntry(
            service=item.service,
            revision=item.revision,
            time=item.time,
            actor=item.actor,
            command=item.command,
            before=_picture(item.before),
            after=_picture(item.after),
            reason=item.reason,
        )
        for side, picture in (("before", entry.before), ("after", entry.after)):
            problems.extend(
                f"{where}.{side}: {problem}"
                for problem in picture_problems(world, item.service, picture)
            )
        entries.append(entry)
    return entries


def _picture(document: PictureDocument) -> Picture:
    policy = TrafficPolicy(
        weights=tuple(document.weights),
        mirrors=tuple(Mirror(tag=tag, hundredths=h) for tag, h in document.mirrors),
    )
    return Picture(
        policy=policy, bindings=tuple(document.bindings), routing=document.routing.routing()
    )
