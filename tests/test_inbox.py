"""A stream's inbox: requests in order, read a bounded way ahead; change notices coalesce."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import grpc
import pytest

from xds_server.errors import ProtocolError
from xds_server.lenient import Unparsable
from xds_server.xds.inbox import MAX_QUEUED_REQUESTS, WAKE, Inbox


def run(test: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(test, 10))


def test_change_notices_coalesce() -> None:
    async def go() -> None:
        inbox = Inbox()
        inbox.wake()
        inbox.wake()
        assert await inbox.next() is WAKE
        inbox.wake()  # a notice after the last was taken is a new one
        assert await inbox.next() is WAKE

    run(go())


def test_a_flood_is_read_only_so_far_ahead() -> None:
    """A client that sends without reading responses is held by flow control, not buffered."""
    read = 0

    async def flood() -> AsyncIterator[int]:
        nonlocal read
        for number in range(3 * MAX_QUEUED_REQUESTS):
            read += 1
            yield number

    async def go() -> None:
        inbox = Inbox()
        reader = asyncio.create_task(inbox.read(flood()))
        await asyncio.sleep(0.05)
        assert read == MAX_QUEUED_REQUESTS
        got = [await inbox.next() for _ in range(3 * MAX_QUEUED_REQUESTS)]
        assert got == list(range(3 * MAX_QUEUED_REQUESTS))
        assert await inbox.next() is None  # the client is done
        await reader

    run(go())


def test_an_unparsable_request_ends_the_stream_after_those_before_it() -> None:
    async def requests() -> AsyncIterator[object]:
        yield "first"
        yield Unparsable("envoy.service.discovery.v3.DiscoveryRequest", "truncated")
        yield "never read"

    async def go() -> None:
        inbox = Inbox()
        await inbox.read(requests())
        assert await inbox.next() == "first"
        with pytest.raises(ProtocolError) as raised:
            await inbox.next()
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT

    run(go())
