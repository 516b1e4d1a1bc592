"""Security of the operator port, end to end with the real CLI: tokens, roles, TLS and mTLS,
the refusal to expose an unprotected API, and the operator-side limits."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.certs import CertificateAuthority
from tests.support.processes import XDSCTL, ServerProcess, free_port, run_xdsctl
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc

EXIT_DENIED = 5


def _token(server: ServerProcess, name: str, role: str) -> str:
    result = server.xdsctl("tokens", "create", "--name", name, "--role", role, "-o", "json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert (data["name"], data["role"]) == (name, role)
    return str(data["token"])


def _as(server: ServerProcess, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"XDSCTL_TOKEN": token} if token else {"XDSCTL_TOKEN": ""}
    result = run_xdsctl(*args, env={"XDSCTL_SERVER": server.address, **env})
    return subprocess.CompletedProcess(args, result.returncode, result.stdout, result.stderr)


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server with admin, operator and viewer tokens (the admin one made while open)."""
    server = ServerProcess(tmp_path / "state.db").start()
    tokens = {"admin": _token(server, "root", "admin")}
    server.token = tokens["admin"]
    tokens["operator"] = _token(server, "ci-bot", "operator")
    tokens["viewer"] = _token(server, "dashboard", "viewer")
    yield server, tokens
    server.stop()


def test_roles_tokens_and_audit(guarded: tuple[ServerProcess, dict[str, str]]) -> None:
    server, tokens = guarded
    assert all(t.startswith("xdst_") and len(t) > 40 for t in tokens.values())

    # No token, an unknown one: exit 5, saying what to do.
    nothing = _as(server, None, "traffic", "get")
    assert nothing.returncode == EXIT_DENIED, nothing.stderr
    assert "XDSCTL_TOKEN" in nothing.stderr and "--token-file" in nothing.stderr
    unknown = _as(server, "xdst_" + "A" * 43, "traffic", "get")
    assert unknown.returncode == EXIT_DENIED and "not known" in unknown.stderr

    # The operator releases; the viewer reads but may not move traffic.
    applied = _as(
        server, tokens["operator"], "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"
    )
    assert applied.returncode == 0, applied.stderr
    before = server.snapshot()
    refused = _as(server, tokens["viewer"], "traffic", "set", "--tags", "blue=100")
    assert refused.returncode == EXIT_DENIED
    assert "needs the operator role" in refused.stderr and "token:dashboard" in refused.stderr
    assert server.snapshot() == before
    viewed = _as(server, tokens["viewer"], "traffic", "get", "-o", "json")
    assert viewed.returncode == 0 and json.loads(viewed.stdout)["revision"] == 1

    moved = _as(server, tokens["operator"], "traffic", "set", "--tags", "blue=100")
    assert moved.returncode == 0, moved.stderr
    for admin_only in (
        ("tokens", "create", "--name", "sneaky", "--role", "admin"),
        ("tokens", "list"),
        ("services", "set", "default", "--domain", "evil.example.com"),
        ("state", "export"),
    ):
        denied = _as(server, tokens["operator"], *admin_only)
        assert denied.returncode == EXIT_DENIED, admin_only
        assert "needs the admin role" in denied.stderr

    # The admin lists tokens: names, roles, dates; never a secret or a hash.
    listed = _as(server, tokens["admin"], "tokens", "list", "-o", "json")
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)
    assert {(r["name"], r["role"]) for r in rows} == {
        ("root", "admin"),
        ("ci-bot", "operator"),
        ("dashboard", "viewer"),
    }
    assert all(r["created_at"] for r in rows)
    exported = _as(server, tokens["admin"], "state", "export")
    assert exported.returncode == 0
    for token in tokens.values():
        assert token not in listed.stdout and token not in exported.stdout
    assert '"sha256"' in exported.stdout  # hashes travel with the state, tokens never

    # The history and the audit log name the identity.
    history = _as(server, tokens["viewer"], "traffic", "history", "-o", "json")
    actors = [entry["actor"] for entry in json.loads(history.stdout)]
    assert actors and all(a.startswith("token:ci-bot (") for a in actors), actors
    log = server.log.read_text()
    audit = [
        json.loads(line)
        for line in log.splitlines()
        if line.startswith("{") and '"operator.change"' in line
    ]
    assert {record["actor"].split(" ")[0] for record in audit} == {"token:ci-bot"}

    # Revoked: refused from the next call on; the last admin cannot go while others remain.
    revoked = _as(server, tokens["admin"], "tokens", "revoke", "ci-bot")
    assert revoked.returncode == 0, revoked.stderr
    after = _as(server, tokens["operator"], "traffic", "set", "--tags", "blue=100")
    assert after.returncode == EXIT_DENIED and "not known" in after.stderr
    last = _as(server, tokens["admin"], "tokens", "revoke", "root")
    assert last.returncode == 1 and "last admin token" in last.stderr
    missing = _as(server, tokens["admin"], "tokens", "revoke", "nobody")
    assert missing.returncode == 1 and "no token named" in missing.stderr
    # A leaked token pasted where its name belongs: refused without repeating it.
    pasted = _as(server, tokens["admin"], "tokens", "revoke", tokens["viewer"])
    assert pasted.returncode == 1 and "that is a token" in pasted.stderr
    assert tokens["viewer"] not in pasted.stderr

    # While it had no token the server was open, and said so once; no token, in any
    # form, ever reaches its log.
    log = server.log.read_text()
    assert log.count('"api.open"') == 1
    for token in tokens.values():
        assert token not in log
        assert token[5:] not in log


def test_token_file_and_closed_after_restart(
    guarded: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    """--token-file works; a restarted server is still closed (tokens are in the store)."""
    server, tokens = guarded
    token_file = tmp_path / "viewer.token"
    token_file.write_text(tokens["viewer"] + "\n")
    by_file = _as(server, None, "--token-file", str(token_file), "services", "list")
    assert by_file.returncode == 0, by_file.stderr
    empty = tmp_path / "empty.token"
    empty.write_text("\n")
    assert _as(server, None, "--token-file", str(empty), "services", "list").returncode == 2

    server.stop()
    server.start()
    assert _as(server, None, "services", "list").returncode == EXIT_DENIED
    assert _as(server, tokens["viewer"], "services", "list").returncode == 0


def test_every_service_on_the_port_is_guarded(
    guarded: tuple[ServerProcess, dict[str, str]],
) -> None:
    """Health answers anyone; CSDS (unary) and reflection (a stream) need a viewer."""
    server, tokens = guarded
    viewer = [("authorization", f"Bearer {tokens['viewer']}")]
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        csds = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            csds.FetchClientStatus(csds_pb2.ClientStatusRequest(), timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        csds.FetchClientStatus(csds_pb2.ClientStatusRequest(), timeout=5, metadata=viewer)

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        ask = [reflection_pb2.ServerReflectionRequest(list_services="")]
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.ServerReflectionInfo(iter(ask), timeout=5))
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        answers = list(stub.ServerReflectionInfo(iter(ask), timeout=5, metadata=viewer))
        names = {s.name for s in answers[0].list_services_response.service}
        assert "xds_server.v1.Operator" in names

        operator = operator_pb2_grpc.OperatorStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            operator.ExportState(pb.ExportStateRequest(), timeout=5, metadata=viewer)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "needs the admin role" in (caught.value.details() or "")

        # A caller without a token is refused before its request is read: a request over
        # the size limit gets UNAUTHENTICATED, not the size check's RESOURCE_EXHAUSTED.
        huge = pb.ImportStateRequest(document="x" * (20 * 1024 * 1024))
        for metadata in ((), viewer):
            with pytest.raises(grpc.RpcError) as caught:
                operator.ImportState(huge, timeout=10, metadata=metadata)
            assert caught.value.code() in (
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            ), caught.value


def test_import_carries_token_hashes(
    guarded: tuple[ServerProcess, dict[str, str]], tmp_path: Path
) -> None:
    """An export imported into a fresh store keeps every token working there."""
    server, tokens = guarded
    document = tmp_path / "state.json"
    document.write_text(_as(server, tokens["admin"], "state", "export").stdout)
    fresh = ServerProcess(tmp_path / "fresh.db").start()
    try:
        imported = run_xdsctl(
            "state", "import", str(document), env={"XDSCTL_SERVER": fresh.address}
        )
        assert imported.returncode == 0, imported.stderr
        assert _as(fresh, None, "services", "list").returncode == EXIT_DENIED
        assert _as(fresh, tokens["viewer"], "tokens", "list").returncode == EXIT_DENIED
        listed = _as(fresh, tokens["admin"], "tokens", "list", "-o", "json")
        assert {r["name"] for r in json.loads(listed.stdout)} == {"root", "ci-bot", "dashboard"}
    finally:
        fresh.stop()


def _serve_exit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `xdsctl serve` expecting it to refuse to start."""
    return subprocess.run(
        [
            *XDSCTL,
            "serve",
            "--state",
            str(tmp_path / "refused.db"),
            "--xds-listen",
            f"127.0.0.1:{free_port()}",
            "--metrics-listen",
            f"127.0.0.1:{free_port()}",
            *args,
        ],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, the API's server certificate (127.0.0.1) and three operator certificates."""
    ca = CertificateAuthority(tmp_path_factory.mktemp("pki"), "ops")
    files = {"ca": ca.cert}
    server = ca.issue("api", "xds-api", dns=("localhost",), ips=("127.0.0.1",))
    files["api-cert"], files["api-key"] = server.cert, server.key
    for person in ("alice", "carol", "mallory"):
        issued = ca.issue(person, person, organization="ops")
        files[f"{person}-cert"], files[f"{person}-key"] = issued.cert, issued.key
    return files


def _api_mtls(pki: dict[str, Path], *cert_roles: str) -> tuple[str, ...]:
    """`serve` flags for an mTLS operator API with these --api-cert-role mappings."""
    files = ("--api-tls-cert", pki["api-cert"], "--api-tls-key", pki["api-key"])
    flags = [*map(str, files), "--api-client-ca", str(pki["ca"])]
    for mapping in cert_roles:
        flags += ["--api-cert-role", mapping]
    return tuple(flags)


def test_refuses_an_unprotected_api_beyond_loopback(tmp_path: Path, pki: dict[str, Path]) -> None:
    public = f"0.0.0.0:{free_port()}"
    plain = _serve_exit(tmp_path, "--api-listen", public)
    assert plain.returncode == 1
    assert "TLS (--api-tls-cert" in plain.stderr and "--insecure" in plain.stderr
    assert "authentication" in plain.stderr

    tls_only = _serve_exit(
        tmp_path,
        "--api-listen",
        public,
        "--api-tls-cert",
        str(pki["api-cert"]),
        "--api-tls-key",
        str(pki["api-key"]),
    )
    assert tls_only.returncode == 1
    assert "authentication" in tls_only.stderr and "TLS (" not in tls_only.stderr

    # TLS plus mapped client certificates, or --insecure: it starts.
    for extra in (_api_mtls(pki, "CN=alice,O=ops=admin"), ("--insecure",)):
        started = ServerProcess(
            tmp_path / f"public-{len(extra)}.db", ("--api-listen", public, *extra)
        )
        started.address = public
        started.start()
        started.stop()


@pytest.fixture
def mtls_server(tmp_path: Path, pki: dict[str, Path]) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "state.db", _api_mtls(pki, "CN=alice,O=ops=operator", "CN=carol,O=ops=viewer")
    ).start()
    yield server
    server.stop()


def _with_cert(
    server: ServerProcess, pki: dict[str, Path], person: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    flags = ["--ca", str(pki["ca"])]
    if person:
        flags += ["--cert", str(pki[f"{person}-cert"]), "--key", str(pki[f"{person}-key"])]
    result = run_xdsctl(*args, *flags, env={"XDSCTL_SERVER": server.address})
    return subprocess.CompletedProcess(args, result.returncode, result.stdout, result.stderr)


def test_mtls_operator_api(mtls_server: ServerProcess, pki: dict[str, Path]) -> None:
    """The client certificate's subject is the identity, its role from --api-cert-role."""
    applied = _with_cert(
        mtls_server, pki, "alice", "apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80"
    )
    assert applied.returncode == 0, applied.stderr
    history = _with_cert(mtls_server, pki, "carol", "traffic", "history", "-o", "json")
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout)[0]["actor"].startswith("cert:CN=alice,O=ops (")

    viewer = _with_cert(mtls_server, pki, "carol", "traffic", "set", "--tags", "blue=100")
    assert viewer.returncode == EXIT_DENIED and "needs the operator role" in viewer.stderr
    unmapped = _with_cert(mtls_server, pki, "mallory", "traffic", "get")
    assert unmapped.returncode == EXIT_DENIED
    assert "--api-cert-role 'CN=mallory,O=ops=ROLE'" in unmapped.stderr
    # No client certificate, or plaintext: the TLS handshake fails, nothing is served.
    assert _with_cert(mtls_server, pki, None, "traffic", "get").returncode == 3
    plaintext = run_xdsctl("traffic", "get", env={"XDSCTL_SERVER": mtls_server.address})
    assert plaintext.returncode == 3


def test_write_rate_and_message_size_limits(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "state.db",
        ("--api-write-rate", "0.1", "--api-write-burst", "2", "--api-max-message-bytes", "2048"),
    ).start()
    try:
        ok = server.xdsctl("apply", "--deployment-tag", "blue", "--endpoint", "10.0.0.5:80")
        assert ok.returncode == 0, ok.stderr
        assert server.xdsctl("traffic", "set", "--tags", "blue=100").returncode == 0
        before = server.snapshot()
        limited = server.xdsctl("traffic", "set", "--tags", "blue=100")
        assert limited.returncode == 1
        assert "too many writes from anonymous" in limited.stderr
        assert "--api-write-rate" in limited.stderr
        assert server.snapshot() == before
        assert server.xdsctl("traffic", "get").returncode == 0  # reads are not rate-limited

        big = tmp_path / "big.json"
        big.write_text(json.dumps({"format": "x", "padding": "x" * 4096}))
        oversized = server.xdsctl("state", "import", str(big))
        assert oversized.returncode == 1
        assert "received message larger than max" in oversized.stderr.lower()
    finally:
        server.stop()


def test_calls_in_flight_per_connection(tmp_path: Path) -> None:
    """A call past --api-max-calls-per-connection is refused, not queued."""
    server = ServerProcess(tmp_path / "state.db", ("--api-max-calls-per-connection", "1")).start()
    try:
        with grpc.insecure_channel(server.address) as channel:
            stub = operator_pb2_grpc.OperatorStub(channel)
            # Waits (no Envoy connected, one asked for) and holds the slot.
            waiting = stub.WaitForSync.future(
                pb.WaitForSyncRequest(timeout_seconds=3, min_envoys=1), timeout=10
            )
            time.sleep(0.5)
            with pytest.raises(grpc.RpcError) as caught:
                stub.ListServices(pb.ListServicesRequest(), timeout=5)
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--api-max-calls-per-connection" in (caught.value.details() or "")
            assert not waiting.result().done
            stub.ListServices(pb.ListServicesRequest(), timeout=5)  # the slot is free again
    finally:
        server.stop()


def test_refuses_a_key_that_is_not_the_certificates(tmp_path: Path, pki: dict[str, Path]) -> None:
    """Named at start-up, not as gRPC's "cannot listen"."""
    refused = _serve_exit(
        tmp_path,
        "--api-listen",
        f"127.0.0.1:{free_port()}",
        "--xds-tls-cert",
        str(pki["api-cert"]),
        "--xds-tls-key",
        str(pki["alice-key"]),
    )
    assert refused.returncode == 1
    assert "are not a certificate and its private key" in refused.stderr
    missing = _serve_exit(
        tmp_path,
        "--api-listen",
        f"127.0.0.1:{free_port()}",
        "--api-tls-cert",
        str(tmp_path / "nowhere.pem"),
        "--api-tls-key",
        str(pki["api-key"]),
    )
    assert missing.returncode == 1 and "cannot read --api-tls-cert" in missing.stderr
    half = _serve_exit(tmp_path, "--api-tls-cert", str(pki["api-cert"]))
    assert half.returncode == 2 and "together" in half.stderr
