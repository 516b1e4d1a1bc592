"""Every kind of misbehaving xDS client at once (the hostile-client tests and fuzzing)."""

from __future__ import annotations

import asyncio

import grpc

from xds_server.testing import ScriptedAdsClient
from xds_server.xds.resources import CLUSTER, ENDPOINT


async def hostile_round(address: str) -> dict[str, object]:
    """Every kind of misbehaving client at once; returns what each one saw."""
    seen: dict[str, object] = {}

    silent = ScriptedAdsClient(address, "never-acks")
    await silent.__aenter__()
    await silent.request(CLUSTER)
    seen["never-acks got"] = (await silent.receive()).type_url

    garbage = ScriptedAdsClient(address, "garbage", delta=True)
    await garbage.__aenter__()
    await garbage.delta_request("type.googleapis.com/not.a.Type", ["x"] * 100)
    await garbage.delta_request(ENDPOINT, [f"no-such-cluster-{i}" for i in range(5000)])

    flood = ScriptedAdsClient(address, "flood")
    await flood.__aenter__()
    for i in range(2000):
        await flood.request(ENDPOINT, [f"name-{i}"], nonce=str(i))

    huge = ScriptedAdsClient(address, "huge")
    await huge.__aenter__()
    try:
        await huge.request(ENDPOINT, ["x" * 1000] * 6000)  # ~6 MB
        await huge.receive(timeout=10)
    except grpc.aio.AioRpcError as error:
        seen["huge"] = error.code()

    vanishing = [ScriptedAdsClient(address, f"vanish-{i}") for i in range(300)]
    for client in vanishing:
        await client.__aenter__()
        await client.request(CLUSTER)
    await asyncio.gather(*(client.receive() for client in vanishing))
    for client in [*vanishing, silent, garbage, flood, huge]:
        await client.close()
    return seen
