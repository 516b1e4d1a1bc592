"""One attempt to hand an event to a hook: a signed POST, or a command fed on stdin.

Both are asynchronous and bounded by the hook's timeout, so a hook that hangs costs
its own delivery that long and nothing else: not a commit, not a push, not the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import signal

import httpx

from xds_server import __version__
from xds_server.model.hooks import Hook
from xds_server.store.outbox import RESPONSE_EXCERPT, Outcome

# After a command exits, its output is read this much longer (a child it left
# running may hold the pipe open: its output is not waited for).
OUTPUT_GRACE_SECONDS = 0.5


def signature(secret: str, body: bytes) -> str:
    """``X-Xds-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the body, as GitHub
    signs its webhooks."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_headers(hook: Hook, event_id: str, event_type: str, body: bytes) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"xds-server/{__version__}",
        "X-Xds-Event": event_type,
        "X-Xds-Delivery": event_id,
    }
    if hook.secret:
        headers["X-Xds-Signature"] = signature(hook.secret, body)
    return headers


async def send(
    hook: Hook, event_id: str, event_type: str, body: bytes, client: httpx.AsyncClient
) -> Outcome:
    """Deliver ``body`` (the event's JSON) once; never raises."""
    if hook.url:
        return await _post(hook, event_id, event_type, body, client)
    return await _run(hook, event_id, event_type, body)


async def _post(
    hook: Hook, event_id: str, event_type: str, body: bytes, client: httpx.AsyncClient
) -> Outcome:
    headers = webhook_headers(hook, event_id, event_type, body)
    try:
        # httpx bounds each phase (connect, each read); the outer bound is the whole.
        async with asyncio.timeout(hook.timeout_s):
            response = await client.post(
                hook.url, content=body, headers=headers, timeout=hook.timeout_s
            )
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(False, f"timeout after {hook.timeout_s:g}s")
    except httpx.HTTPError as error:
        return Outcome(False, type(error).__name__, str(error)[:RESPONSE_EXCERPT])
    return Outcome(
        200 <= response.status_code < 300,
        str(response.status_code),
        response.text[:RESPONSE_EXCERPT],
    )


async def _tail(stream: asyncio.StreamReader) -> bytes:
    """What a command prints, to its end; only the last part is kept."""
    kept = b""
    while chunk := await stream.read(4096):
        kept = (kept + chunk)[-RESPONSE_EXCERPT * 4 :]
    return kept


async def _run(hook: Hook, event_id: str, event_type: str, body: bytes) -> Outcome:
    """Run the command in its own process group with the event on stdin; exit 0 is
    delivered; at the timeout the whole group is killed."""
    environment = {**os.environ, "XDS_EVENT": event_type, "XDS_DELIVERY": event_id}
    try:
        process = await asyncio.create_subprocess_exec(
            *hook.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            env=environment,
        )
    except OSError as error:
        return Outcome(False, "not started", f"{hook.command[0]}: {error.strerror or error}")
    assert process.stdin is not None and process.stdout is not None
    output = asyncio.ensure_future(_tail(process.stdout))
    try:
        async with asyncio.timeout(hook.timeout_s):
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.write(body)
                await process.stdin.drain()
                process.stdin.close()
            code = await process.wait()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        output.cancel()
        return Outcome(False, f"timeout after {hook.timeout_s:g}s (process group killed)")
    text = ""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(OUTPUT_GRACE_SECONDS):
            text = (await output).decode(errors="replace")
    output.cancel()
    return Outcome(code == 0, f"exit {code}", text[-RESPONSE_EXCERPT:])
