"""mTLS on the xDS port with real Envoy: a node gets config only over a certificate from
the right CA that names its node id, and only from a server whose certificate carries the
name it expects. None of the refused connections disturbs the good Envoy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tests.support.certs import CertificateAuthority, Issued
from tests.support.processes import ServerProcess, free_port, run_xdsctl
from tests.support.stack import Envoy, Stack, wait_until
from xds_server.xds.resources import CLUSTER

SERVER_NAME = "xds.test.internal"
REFUSED_FOR_S = 4.0


def _bootstrap(
    workdir: Path, xds: str, node_id: str, issued: Issued, ca: Path, delta: bool = False
) -> Envoy:
    """An Envoy whose bootstrap is `xdsctl bootstrap --tls-cert ... --server-name` output."""
    admin = f"127.0.0.1:{free_port()}"
    made = run_xdsctl(
        "bootstrap",
        *(["--delta"] if delta else []),
        "--node-id",
        node_id,
        "--xds",
        xds,
        "--admin",
        admin,
        "--tls-cert",
        str(issued.cert),
        "--tls-key",
        str(issued.key),
        "--ca",
        str(ca),
        "--server-name",
        SERVER_NAME,
    )
    assert made.returncode == 0, made.stderr
    config = workdir / f"envoy-{node_id}.yaml"
    config.write_text(made.stdout)
    return Envoy(workdir, xds, node_id, delta=delta, config=config, admin=admin)


def _second_stream(xds: str, issued: Issued, ca: Path) -> grpc.StatusCode | None:
    """Open an ADS stream as envoy-a, with its certificate; the status it ends with."""

    async def attempt() -> grpc.StatusCode | None:
        credentials = grpc.ssl_channel_credentials(
            ca.read_bytes(), issued.key.read_bytes(), issued.cert.read_bytes()
        )
        options = [("grpc.ssl_target_name_override", SERVER_NAME)]
        async with grpc.aio.secure_channel(xds, credentials, options=options) as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            call = stub.StreamAggregatedResources()
            await call.write(
                discovery_pb2.DiscoveryRequest(type_url=CLUSTER, node=base_pb2.Node(id="envoy-a"))
            )
            try:
                await asyncio.wait_for(call.read(), 5)
            except grpc.aio.AioRpcError as error:
                return error.code()
            return None

    return asyncio.run(attempt())


def _listeners(envoy: Envoy) -> int:
    return len(envoy.config_dump("dynamic_listeners"))


def _impersonations(stack: Stack, event: str = "xds.node_impersonation") -> list[dict[str, Any]]:
    assert stack.server is not None
    lines = stack.server.log.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    return [r for r in records if r.get("event") == event]


def _status_nodes(stack: Stack) -> set[str]:
    assert stack.server is not None
    result = stack.server.xdsctl("status", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {node["node_id"] for node in json.loads(result.stdout)["nodes"]}


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Issued | Path]:
    ours = CertificateAuthority(tmp_path / "pki", "fleet")
    other = CertificateAuthority(tmp_path / "other", "other")
    return {
        "ca": ours.cert,
        "server": ours.issue("xds", "xds-server", dns=(SERVER_NAME,)),
        "envoy-a": ours.issue(
            "envoy-a", "envoy-a", uris=("spiffe://test.internal/ns/prod/envoy-a",)
        ),
        "envoy-b": ours.issue(
            "envoy-b", "envoy-b", uris=("spiffe://test.internal/ns/prod/envoy-b",)
        ),
        "rogue": other.issue("rogue", "envoy-c", uris=("spiffe://test.internal/ns/prod/envoy-c",)),
    }


@pytest.fixture
def secured(tmp_path: Path, pki: dict[str, Issued | Path]) -> Iterator[Stack]:
    stack = Stack(tmp_path, delta=False)
    server = pki["server"]
    assert isinstance(server, Issued)
    stack.start_server(
        (
            "--xds-tls-cert",
            str(server.cert),
            "--xds-tls-key",
            str(server.key),
            "--xds-client-ca",
            str(pki["ca"]),
            "--xds-max-streams-per-identity",
            "1",
        )
    )
    stack.upstream("blue")
    stack.upstream("green")
    yield stack
    stack.close()


def test_mtls_nodes_and_impostors(
    secured: Stack, pki: dict[str, Issued | Path], tmp_path: Path
) -> None:
    stack, ca = secured, pki["ca"]
    assert stack.server is not None and isinstance(ca, Path)
    xds = stack.server.xds_address
    blue, green = stack.upstreams["blue"], stack.upstreams["green"]
    stack.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", blue.endpoint)
    stack.xdsctl("apply", "--deployment-tag", "green", "--endpoint", green.endpoint)
    stack.xdsctl("traffic", "set", "--tags", "blue=100,green=0")

    good = _bootstrap(tmp_path, xds, "envoy-a", pki["envoy-a"], ca)  # type: ignore[arg-type]
    stack.envoys.append(good)
    stack.wait_all("blue")
    updates = good.stats()["cluster_manager.cds.update_success"]

    # Another CA's certificate: the handshake fails; a certificate naming another node:
    # the stream ends with PERMISSION_DENIED.
    rogue = _bootstrap(tmp_path, xds, "envoy-c", pki["rogue"], ca)  # type: ignore[arg-type]
    posing = _bootstrap(tmp_path, xds, "envoy-d", pki["envoy-b"], ca, delta=True)  # type: ignore[arg-type]
    stack.envoys += [rogue, posing]

    # A server holding a node's certificate (same CA, but not SERVER_NAME) is no control
    # plane to Envoy: the SAN match in the bootstrap refuses it.
    node_cert = pki["envoy-b"]
    assert isinstance(node_cert, Issued)
    impostor = ServerProcess(
        tmp_path / "impostor.db",
        ("--xds-tls-cert", str(node_cert.cert), "--xds-tls-key", str(node_cert.key)),
    ).start()
    try:
        duped = _bootstrap(
            tmp_path,
            impostor.xds_address,
            "envoy-b",
            pki["envoy-b"],  # type: ignore[arg-type]
            ca,
        )
        stack.envoys.append(duped)
        wait_until(
            lambda: duped.stats().get("cluster.xds_cluster.ssl.fail_verify_san", 0) > 0,
            what="Envoy refusing the impostor's certificate",
        )
        wait_until(lambda: _impersonations(stack), what="the posing node refused and logged")
        time.sleep(REFUSED_FOR_S)
        for refused in (rogue, posing, duped):
            assert _listeners(refused) == 0, refused.node_id
        # The rogue never completed a handshake; the posing node did, then was refused.
        assert rogue.stats().get("cluster.xds_cluster.upstream_cx_connect_fail", 0) > 0
        assert rogue.stats().get("cluster.xds_cluster.ssl.handshake", 0) == 0
        assert posing.stats().get("cluster.xds_cluster.ssl.handshake", 0) > 0
        record = _impersonations(stack)[0]
        assert record["node"] == "envoy-d"
        assert "spiffe://test.internal/ns/prod/envoy-b" in record["certificate"]
        assert _status_nodes(stack) == {"envoy-a"}
        # Its stats sink is refused too: it cannot report figures under another's name.
        sink = wait_until(
            lambda: _impersonations(stack, "traffic.sink_node_impersonation"),
            what="the posing node's stats sink refused",
        )
        assert {r["node"] for r in sink} == {"envoy-d"}
    finally:
        impostor.stop()

    # A second stream on envoy-a's certificate: over the per-identity limit (1).
    assert _second_stream(xds, pki["envoy-a"], ca) == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[arg-type]

    # The good Envoy never noticed: same CDS updates, and the next change arrives.
    assert good.stats()["cluster_manager.cds.update_success"] == updates
    stack.xdsctl("traffic", "set", "--tags", "blue=0,green=100")
    stack.wait_all("green")
