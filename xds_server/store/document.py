"""The whole state as one JSON document (``xdsctl state export`` / ``import``), and back.

Loading validates everything before anything is written: the world with the
operator API's own rules (``world_from_document``), and each history entry
against it (known service, unique revision, not beyond the service's).
"""

from __future__ import annotations

import json
from typing import Any

from xds_server.auth.tokens import check_admin_remains, token_from_document, token_to_document
from xds_server.errors import InvalidRequest
from xds_server.model.document import world_from_document, world_to_document
from xds_server.model.state import HistoryEntry
from xds_server.store import codec
from xds_server.store.base import StateDump

FORMAT = "xds_server-state/v1"


def state_to_json(dump: StateDump) -> str:
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
            }
            for e in dump.history
        ],
        "tokens": [token_to_document(t) for t in dump.tokens],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def state_from_json(text: str) -> StateDump:
    """Parse and validate an exported document; ``InvalidRequest`` names what is wrong."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"the state document is not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise InvalidRequest(
            f"the state document's format is {found!r}, expected {FORMAT!r}: "
            "import a file made by `xdsctl state export`"
        )
    try:
        world = world_from_document(document["world"])
        history = tuple(_entry(item) for item in document["history"])
        tokens = tuple(token_from_document(item) for item in document.get("tokens", []))
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidRequest(f"the state document is malformed: {error!r}") from error
    seen: set[tuple[str, int]] = set()
    for entry in history:
        key = (entry.service, entry.revision)
        service = world.services.get(entry.service)
        if service is None:
            raise InvalidRequest(f"history entry {key} names an unknown service")
        if key in seen:
            raise InvalidRequest(f"history entry {key} appears twice")
        if not 1 <= entry.revision <= service.revision:
            raise InvalidRequest(
                f"history entry {key} is outside the service's revisions 1..{service.revision}"
            )
        seen.add(key)
    for field in ("name", "sha256"):
        values = [getattr(t, field) for t in tokens]
        if len(set(values)) != len(values):
            raise InvalidRequest(f"the state document has two tokens with one {field}")
    if tokens:
        check_admin_remains(
            tokens, "the state document's tokens include no admin token", InvalidRequest
        )
    return StateDump(world=world, history=history, tokens=tokens)


def _entry(item: dict[str, Any]) -> HistoryEntry:
    return HistoryEntry(
        service=str(item["service"]),
        revision=int(item["revision"]),
        time=str(item["time"]),
        actor=str(item["actor"]),
        command=str(item["command"]),
        before=codec.decode_picture(json.dumps(item["before"])),
        after=codec.decode_picture(json.dumps(item["after"])),
    )
