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
import re
import signal
import subprocess
import tempfile
from typing import BinaryIO

import httpx

from xds_server import __version__
from xds_server.model.hooks import Hook
from xds_server.store.outbox import RESPONSE_EXCERPT, Outcome

# After the kill, how long to wait for the command to be gone (it always is: SIGKILL).
KILL_WAIT_SECONDS = 5.0
# Environment variables an exec hook does not inherit: they look like secrets.
_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PGPASS|CREDENTIAL", re.IGNORECASE)


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
    """Deliver ``body`` (the event's JSON) once; never raises: whatever goes wrong is a
    failed outcome, retried like a refusal."""
    try:
        if hook.url:
            return await _post(hook, event_id, event_type, body, client)
        return await _run(hook, event_id, event_type, body)
    except Exception as error:  # an attempt must end as an outcome, or its queue stalls
        return Outcome(False, type(error).__name__, str(error)[:RESPONSE_EXCERPT])


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


def hook_environment(event_type: str, event_id: str) -> dict[str, str]:
    """The server's environment without what looks like a secret (a database password, a
    token), plus the event's type and id: what an exec hook runs with."""
    kept = {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}
    return {**kept, "XDS_EVENT": event_type, "XDS_DELIVERY": event_id}


async def _run(hook: Hook, event_id: str, event_type: str, body: bytes) -> Outcome:
    """Run the command in its own process group with the event on stdin; exit 0 is
    delivered. At the timeout, or once it exits, or if this attempt is cancelled, the
    whole group is killed: nothing it left in the group outlives the attempt.

    stdin and the output are files, not pipes: asyncio waits for a process's pipes to
    close before it reports the exit, and a child holding them would hold the attempt.
    """
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as output:
        stdin.write(body)
        stdin.seek(0)
        try:
            process = await asyncio.create_subprocess_exec(
                *hook.command,
                stdin=stdin,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=hook_environment(event_type, event_id),
            )
        except OSError as error:
            return Outcome(False, "not started", f"{hook.command[0]}: {error.strerror or error}")
        try:
            async with asyncio.timeout(hook.timeout_s):
                code = await process.wait()
        except TimeoutError:
            return Outcome(
                False,
                f"timeout after {hook.timeout_s:g}s (process group killed)",
                _tail(output),
            )
        finally:
            _end_group(process.pid)
            if process.returncode is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(KILL_WAIT_SECONDS):
                        await process.wait()
        return Outcome(code == 0, f"exit {code}", _tail(output))


def _end_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _tail(output: BinaryIO) -> str:
    """The end of what the command printed."""
    output.seek(0, os.SEEK_END)
    size = output.tell()
    output.seek(max(0, size - RESPONSE_EXCERPT * 4))
    return output.read().decode(errors="replace")[-RESPONSE_EXCERPT:]
