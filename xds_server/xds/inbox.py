"""An ADS stream's one queue: the client's requests and the cache's change notices.

Requests are read by a task of their own, at most ``MAX_QUEUED_REQUESTS``
ahead of processing; change notices coalesce (one pending at most), so a
stream that falls behind plans once from the latest snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc

from xds_server.errors import ProtocolError
from xds_server.lenient import Unparsable

# A change notice: plan every type again.
WAKE = object()
_END = object()
# Requests read ahead of processing, at most: a client that floods requests
# while not reading responses is slowed by gRPC flow control, not buffered.
MAX_QUEUED_REQUESTS = 64


class Inbox:
    """Requests in arrival order, interleaved with change notices."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._drained = asyncio.Event()
        self._drained.set()
        self._woken = False

    def wake(self) -> None:
        """Queue a change notice, unless one is queued already."""
        if not self._woken:
            self._woken = True
            self._queue.put_nowait(WAKE)

    async def read(self, requests: AsyncIterator[Any]) -> None:
        """Queue the client's requests until it is done (the stream's reader task)."""
        try:
            async for request in requests:
                if isinstance(request, Unparsable):
                    # Ends the stream once the requests before it are handled.
                    self._queue.put_nowait(
                        ProtocolError(
                            grpc.StatusCode.INVALID_ARGUMENT,
                            f"a request is not a valid {request.message_type} ({request.error})",
                        )
                    )
                    return
                self._queue.put_nowait(request)
                if self._queue.qsize() >= MAX_QUEUED_REQUESTS:
                    self._drained.clear()
                    await self._drained.wait()
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        finally:
            self._queue.put_nowait(_END)

    async def next(self) -> Any:
        """The next request, or ``WAKE``; None once the client is done. An unparsable
        request raises its ``ProtocolError`` here, after those before it."""
        item = await self._queue.get()
        if self._queue.qsize() <= MAX_QUEUED_REQUESTS // 2:
            self._drained.set()
        if item is _END:
            return None
        if isinstance(item, ProtocolError):
            raise item
        if item is WAKE:
            self._woken = False
        return item
