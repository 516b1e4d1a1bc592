"""The pure parts of authentication and limits: the role table, tokens, certificate names,
stream counting and the write rate."""

from __future__ import annotations

import tempfile
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.support.processes import free_port
from tests.support.stack import InProcessControlPlane
from xds_server.auth.identity import bearer_token
from xds_server.auth.limits import StreamCounter, StreamLimits, WriteRateLimiter, peer_host
from xds_server.auth.node_identity import CertificateNames
from xds_server.auth.roles import METHOD_RULES, Role, parse_role, rule_for
from xds_server.auth.tokens import (
    TokenRecord,
    new_token,
    token_hash,
    validate_token_name,
    with_token,
    without_token,
)
from xds_server.cli.local.serve_config import parse_cert_role
from xds_server.errors import InvalidRequest, LimitExceeded, NotFound, PreconditionFailed
from xds_server.model.state import World
from xds_server.store.base import StateDump
from xds_server.store.state_document import state_from_json, state_to_json


def _record(name: str, role: Role) -> TokenRecord:
    return TokenRecord(name, role, token_hash(name), "2026-11-28T00:00:00Z", "test")


def test_every_method_served_on_the_operator_port_has_a_rule() -> None:
    """Asked through reflection, so a service added to the port later fails here until the
    role table says who may call it (unlisted methods would need admin)."""
    plane = InProcessControlPlane(Path(tempfile.mkdtemp(prefix="roles-")), free_port())
    try:
        with grpc.insecure_channel(plane.api_address) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            ask = [reflection_pb2.ServerReflectionRequest(list_services="")]
            answer = next(iter(stub.ServerReflectionInfo(iter(ask), timeout=5)))
    finally:
        plane.stop()
    services = [s.name for s in answer.list_services_response.service]
    assert "xds_server.v1.Operator" in services and len(services) >= 4
    pool = descriptor_pool.Default()
    served = {
        f"/{name}/{method.name}"
        for name in services
        for method in pool.FindServiceByName(name).methods
    }
    assert served <= set(METHOD_RULES), served - set(METHOD_RULES)


def test_role_table_and_order() -> None:
    assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
    assert rule_for("/grpc.health.v1.Health/Check").role is None
    assert rule_for("/xds_server.v1.Operator/GetTraffic").role is Role.VIEWER
    set_traffic = rule_for("/xds_server.v1.Operator/SetTraffic")
    assert (set_traffic.role, set_traffic.writes) == (Role.OPERATOR, True)
    assert rule_for("/xds_server.v1.Operator/SetServiceDomains").role is Role.ADMIN
    assert rule_for("/xds_server.v1.Operator/ExportState").writes is False
    assert rule_for("/some.New/Method").role is Role.ADMIN  # closed until listed
    assert parse_role(" Operator ") is Role.OPERATOR
    with pytest.raises(InvalidRequest, match="use one of viewer, operator, admin"):
        parse_role("root")


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("xdst_") and len(t) == 5 + 43 for t in tokens)
    token = next(iter(tokens))
    assert len(token_hash(token)) == 64 and token not in token_hash(token)


def test_token_set_rules() -> None:
    root, bot = _record("root", Role.ADMIN), _record("ci-bot", Role.OPERATOR)
    tokens = with_token(with_token((), root), bot)
    with pytest.raises(PreconditionFailed, match="a token named ci-bot exists"):
        with_token(tokens, _record("ci-bot", Role.VIEWER))
    with pytest.raises(PreconditionFailed, match="last admin token"):
        without_token(tokens, "root")
    with pytest.raises(NotFound, match="no token named 'nobody'"):
        without_token(tokens, "nobody")
    assert without_token(tokens, "ci-bot") == (root,)
    with pytest.raises(PreconditionFailed, match="last admin token"):
        without_token((root,), "root")  # not even the last token of all
    pasted = new_token()
    for attempt in (lambda: without_token(tokens, pasted), lambda: validate_token_name(pasted)):
        with pytest.raises(InvalidRequest, match="that is a token, not a token's name") as caught:
            attempt()
        assert pasted not in str(caught.value)


def test_state_documents_carry_validated_token_hashes() -> None:
    dump = StateDump(World(), (), (_record("root", Role.ADMIN),))
    assert state_from_json(state_to_json(dump)).tokens == dump.tokens
    text = state_to_json(dump)
    with pytest.raises(InvalidRequest, match="sha256 must be 64 lowercase hex"):
        state_from_json(text.replace(token_hash("root"), "abc"))
    with pytest.raises(InvalidRequest, match="role 'god'"):
        state_from_json(text.replace('"admin"', '"god"'))
    twice = StateDump(World(), (), (_record("root", Role.ADMIN), _record("root", Role.VIEWER)))
    with pytest.raises(InvalidRequest, match="two tokens with one name"):
        state_from_json(state_to_json(twice))
    viewers_only = StateDump(World(), (), (_record("dashboard", Role.VIEWER),))
    with pytest.raises(InvalidRequest, match="include no admin token"):
        state_from_json(state_to_json(viewers_only))


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("Bearer xdst_abc", "xdst_abc"),
        ("bearer   xdst_abc ", "xdst_abc"),
        ("Basic dXNlcjpwYXNz", ""),
        ("Bearer", ""),
        ("xdst_abc", ""),
    ],
)
def test_bearer_header(header: str | None, expected: str | None) -> None:
    """A malformed header is refused (""), never taken as no header (None)."""
    metadata = {} if header is None else {"authorization": header}
    assert bearer_token(metadata) == expected


def test_cert_role_flag() -> None:
    assert parse_cert_role("CN=alice,O=ops=operator") == ("CN=alice,O=ops", Role.OPERATOR)
    with pytest.raises(InvalidRequest, match="is not SUBJECT=ROLE"):
        parse_cert_role("alice=admin")
    with pytest.raises(InvalidRequest, match="unknown role"):
        parse_cert_role("CN=alice=boss")


def test_certificate_names_vouch_for_node_ids() -> None:
    names = CertificateNames.of(
        {
            "x509_common_name": [b"gateway-1"],
            "x509_subject_alternative_name": [
                b"gw.example.com",
                b"spiffe://example.org/ns/prod/envoy-7",
            ],
        }
    )
    assert names.uris == ("spiffe://example.org/ns/prod/envoy-7",)
    for node_id in ("envoy-7", "gateway-1", "spiffe://example.org/ns/prod/envoy-7"):
        assert names.vouches_for(node_id), node_id
    for node_id in ("envoy-8", "prod", "gw.example.com", "", "envoy"):
        assert not names.vouches_for(node_id), node_id
    assert names.identity == "spiffe://example.org/ns/prod/envoy-7"


def test_peer_hosts() -> None:
    assert peer_host("ipv4:10.0.0.1:5000") == "10.0.0.1"
    assert peer_host("ipv6:[::1]:5000") == "::1"
    assert peer_host("unix:/tmp/sock") == "unix:/tmp/sock"


def test_stream_counter_refuses_and_releases() -> None:
    counter = StreamCounter(StreamLimits(2, 3, 1, "--xds-max-streams"), "xDS streams")
    a = counter.open("ipv4:127.0.0.1:1000")
    b = counter.open("ipv4:127.0.0.1:1000")
    with pytest.raises(LimitExceeded, match="--xds-max-streams-per-connection"):
        counter.open("ipv4:127.0.0.1:1000")
    c = counter.open("ipv4:127.0.0.1:2000")
    with pytest.raises(LimitExceeded, match=r"from peer 127\.0\.0\.1 \(limit 3\).*-per-peer"):
        counter.open("ipv4:127.0.0.1:3000")
    a.add_identity("envoy-1")
    with pytest.raises(LimitExceeded, match="identity envoy-1"):
        b.add_identity("envoy-1")
    for lease in (a, b, c, a):  # releasing twice is harmless
        lease.release()
    # Everything was given back: the full limits are available again.
    leases = [counter.open(f"ipv4:127.0.0.1:{port}") for port in (4000, 4000, 5000)]
    leases[0].add_identity("envoy-1")


def test_write_rate_is_a_bucket_per_identity() -> None:
    limiter = WriteRateLimiter(per_second=2.0, burst=3)
    for _ in range(3):
        limiter.spend("token:ci-bot", now=100.0)
    with pytest.raises(LimitExceeded, match=r"retry in 0\.5s"):
        limiter.spend("token:ci-bot", now=100.0)
    limiter.spend("token:other", now=100.0)  # others are not affected
    limiter.spend("token:ci-bot", now=100.5)  # refilled at 2/s
    with pytest.raises(LimitExceeded):
        limiter.spend("token:ci-bot", now=100.5)


def test_the_role_table_in_the_docs_is_the_codes() -> None:
    """docs/security.md carries the same table as METHOD_RULES, row for row."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `/")]
    documented = {}
    for row in rows:
        method, command, role, writes = (cell.strip() for cell in row.strip("|").split("|"))
        documented[method.strip("`")] = (command, role, writes)
    expected = {
        method: (
            rule.command,
            rule.role.label if rule.role else "none",
            "yes" if rule.writes else "no",
        )
        for method, rule in METHOD_RULES.items()
    }
    assert documented == expected
