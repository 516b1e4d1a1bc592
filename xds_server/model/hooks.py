"""Hooks: where events go. What a hook is, and the checks a new one passes (pure).

A hook is a webhook (an http or https URL, optionally signed with a secret) or a
command run with the event on its stdin. It subscribes to event patterns: a type
(``traffic.changed``), a family (``rollout.*``) or everything (``*``).
"""

from __future__ import annotations

import fnmatch
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

from xds_server.errors import InvalidRequest, NotFound, PreconditionFailed
from xds_server.model.events import EVENT_TYPES
from xds_server.model.names import did_you_mean

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_TIMEOUT_SECONDS = 300.0
MAX_SECRET_BYTES = 4096
# An exported hook's secret left out of the document: an import keeps the secret the
# store holds for that hook (and is refused when it holds none).
OMITTED_SECRET = "\x00omitted"
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True, slots=True)
class Hook:
    """One subscriber. Exactly one of ``url`` and ``command`` is set."""

    name: str
    events: tuple[str, ...]
    timeout_s: float
    created_at: str
    created_by: str
    url: str = ""
    command: tuple[str, ...] = ()
    # HMAC key for X-Xds-Signature (webhooks only); never logged, exported on request.
    secret: str = ""

    @property
    def kind(self) -> str:
        return "webhook" if self.url else "exec"

    @property
    def target(self) -> str:
        """What the hook calls, safe to show (a URL has no credentials by construction)."""
        return self.url or " ".join(self.command)

    def wants(self, event_type: str) -> bool:
        """Whether this hook subscribes to ``event_type`` (``hook.test`` goes only where
        ``hooks test`` sends it)."""
        return matches(self.events, event_type)


def matches(patterns: Iterable[str], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in patterns)


def validate_hook_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"hook name {name!r} is not valid: use 1 to 63 lower-case letters, digits and "
            "'-', starting and ending with a letter or digit (for example: chat-release)"
        )
    return name


def parse_patterns(patterns: Iterable[str]) -> tuple[str, ...]:
    """Event patterns as given (``traffic.*,rollout.aborted``), each matching some type;
    none given means every event."""
    parsed: list[str] = []
    for pattern in (p.strip() for p in patterns):
        if not pattern:
            continue
        if not any(fnmatch.fnmatchcase(t, pattern) for t in EVENT_TYPES):
            hint = did_you_mean(pattern, EVENT_TYPES)
            families = sorted({t.split(".")[0] + ".*" for t in EVENT_TYPES})
            raise InvalidRequest(
                f"event pattern {pattern!r} matches no event type: {hint}use a type "
                f"({', '.join(EVENT_TYPES)}), a family ({', '.join(families)}) or *"
            )
        if pattern not in parsed:
            parsed.append(pattern)
    return tuple(parsed) or ("*",)


def validate_url(url: str) -> str:
    """An http or https URL with a host and no credentials in it."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidRequest(
            f"--url {url!r} does not parse ({error}): give a URL like https://hooks.example/xds"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest(
            f"--url {url!r} must be http or https (got {parts.scheme or 'no scheme'}): "
            "give a URL like https://hooks.example/xds"
        )
    if not parts.hostname:
        raise InvalidRequest(
            f"--url {url!r} has no host: give a URL like https://hooks.example/xds"
        )
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(
            "--url must not carry credentials (user:password@): they would be stored and "
            "shown in clear; sign deliveries with --secret-file instead, and let the "
            "receiver check X-Xds-Signature"
        )
    if port == 0:
        raise InvalidRequest(f"--url {url!r} has port 0: give the port the receiver listens on")
    return url


def validate_timeout(seconds: float) -> float:
    if not 0 < seconds <= MAX_TIMEOUT_SECONDS:
        raise InvalidRequest(
            f"--timeout must be above 0 and at most {MAX_TIMEOUT_SECONDS:.0f}s (got {seconds:g}s)"
        )
    return seconds


def new_hook(
    *,
    name: str,
    url: str,
    command: Iterable[str],
    secret: str,
    events: Iterable[str],
    timeout_s: float,
    created_at: str,
    created_by: str,
) -> Hook:
    """A hook from what ``hooks add`` sent, every field checked."""
    command = tuple(command)
    if any("\x00" in part for part in (url, *command)):
        raise InvalidRequest(
            "a hook's --url and --exec must not contain NUL characters: remove them"
        )
    if url and command:
        raise InvalidRequest("--url and --exec exclude each other: give one")
    if not url and not command:
        raise InvalidRequest(
            "a hook needs --url URL (a webhook) or --exec 'COMMAND ...' (a command)"
        )
    if command and not command[0].strip():
        raise InvalidRequest("--exec needs a command: for example --exec '/usr/local/bin/scale'")
    if secret and not url:
        raise InvalidRequest(
            "--secret-file signs webhook bodies: an --exec hook reads the event on stdin, "
            "unsigned; drop --secret-file"
        )
    if len(secret.encode()) > MAX_SECRET_BYTES:
        raise InvalidRequest(
            f"the secret is longer than {MAX_SECRET_BYTES} bytes: use a shorter one"
        )
    return Hook(
        name=validate_hook_name(name),
        events=parse_patterns(events),
        timeout_s=validate_timeout(timeout_s or DEFAULT_TIMEOUT_SECONDS),
        created_at=created_at,
        created_by=created_by,
        url=validate_url(url) if url else "",
        command=command,
        secret=secret,
    )


def with_hook(hooks: tuple[Hook, ...], hook: Hook) -> tuple[Hook, ...]:
    """``hooks`` plus ``hook``; a name already taken is refused."""
    if any(h.name == hook.name for h in hooks):
        raise PreconditionFailed(
            f"a hook named {hook.name} exists already: pick another name, or "
            f"`xdsctl hooks remove {hook.name}` first"
        )
    return tuple(sorted((*hooks, hook), key=lambda h: h.name))


def without_hook(hooks: tuple[Hook, ...], name: str) -> tuple[Hook, ...]:
    """``hooks`` without the one named ``name``; an unknown name is refused."""
    find_hook(hooks, name)
    return tuple(h for h in hooks if h.name != name)


def find_hook(hooks: Iterable[Hook], name: str) -> Hook:
    hooks = tuple(hooks)
    for hook in hooks:
        if hook.name == name:
            return hook
    names = [h.name for h in hooks]
    hint = did_you_mean(name, names)
    raise NotFound(
        f"no hook named {name}: {hint}`xdsctl hooks list` shows "
        f"{'the ' + str(len(names)) + ' there are' if names else 'none yet'}"
    )


# --- retries --------------------------------------------------------------------------

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 300.0
# A delivery failing for this long is marked failed, and shown, instead of retried.
GIVE_UP_AFTER_SECONDS = 24 * 3600.0


def retry_after(attempt: int, jitter: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (from 1): 1 s doubling up
    to 5 min, spread by ``jitter`` (in [0, 1)) over 75 % to 125 % so hooks failing
    together do not retry together."""
    base = min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2.0 ** min(attempt - 1, 30))
    return min(MAX_RETRY_SECONDS, base * (0.75 + 0.5 * jitter))


def gives_up(first_failure: float, now: float) -> bool:
    return now - first_failure >= GIVE_UP_AFTER_SECONDS
