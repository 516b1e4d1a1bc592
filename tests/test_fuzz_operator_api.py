"""Property-based fuzzing of every operator API method (typed messages and raw bytes).

Every call ends OK or with a documented status and a message, never INTERNAL or
UNKNOWN, and the state (everything `state export` shows) is unchanged unless
the call succeeded.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.processes import free_port
from tests.support.stack import InProcessControlPlane
from xds_server.v1 import operator_pb2 as pb
from xds_server.v1 import operator_pb2_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["Operator"]
# The statuses docs/operator-guide.md documents for refusals.
DOCUMENTED = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
# WaitForSync may rightly wait (e.g. --min-envoys with no Envoy): the deadline ends it.
MAY_WAIT = {"WaitForSync"}
CALL_DEADLINE_S = 3.0

# Strings that reach deeper than random text: names, tags, endpoints, domains, percents.
INTERESTING = st.sampled_from(
    [
        "",
        "default",
        "shop",
        "blue",
        "green",
        "canary",
        "10.0.0.1",
        "app.local",
        "*",
        "shop.example.com",
        "*.example.com",
        "5",
        "0.25",
        "100",
        "x" * 300,
        "\x00",
        "ünïcode",
        "-bad-",
        "viewer",
        "operator",
        "admin",
    ]
)
FD = descriptor.FieldDescriptor


def _scalar(field: FD) -> st.SearchStrategy[Any]:
    if field.type == FD.TYPE_STRING:
        return st.one_of(INTERESTING, st.text(max_size=40))
    if field.type == FD.TYPE_BOOL:
        return st.booleans()
    if field.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return st.one_of(st.floats(allow_nan=True), st.sampled_from([0.0, 0.5, 1.0, -1.0]))
    if field.type == FD.TYPE_ENUM:
        return st.integers(min_value=0, max_value=5)
    if field.type in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return st.one_of(st.integers(-3, 110), st.integers(-(2**31), 2**31 - 1))
    if field.type in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if field.type in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return st.one_of(st.integers(-3, 110), st.integers(-(2**63), 2**63 - 1))


def messages(message: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
    """Random messages of this type: any subset of fields, nested up to a depth."""
    strategies: dict[str, st.SearchStrategy[Any]] = {}
    for field in message.fields:
        if field.type == FD.TYPE_MESSAGE:
            if depth >= 3:
                continue
            value = messages(field.message_type, depth + 1)
        else:
            value = _scalar(field)
        if field.is_repeated:
            value = st.lists(value, max_size=4)
        strategies[field.name] = value
    cls = message_factory.GetMessageClass(message)
    return st.fixed_dictionaries({}, optional=strategies).map(lambda fields: _build(cls, fields))


def _build(cls: Any, fields: dict[str, Any]) -> Any:
    built = cls()
    for name, value in fields.items():
        target = getattr(built, name)
        if isinstance(value, list):
            target.extend(value)
        elif hasattr(value, "DESCRIPTOR"):
            target.CopyFrom(value)
        else:
            setattr(built, name, value)
    return built


@pytest.fixture(scope="module")
def plane() -> Iterator[Target]:
    """A real control plane (in process) with two deployments, a canary and an admin token
    that every fuzzed call carries (so calls reach the methods, not only the guard)."""
    control = InProcessControlPlane(Path(tempfile.mkdtemp(prefix="fuzz-")), free_port())
    stub = operator_pb2_grpc.OperatorStub(grpc.insecure_channel(control.api_address))
    created = stub.CreateToken(pb.CreateTokenRequest(name="fuzz-admin", role="admin"))
    admin = (("authorization", f"Bearer {created.token}"),)
    stub.Apply(
        pb.ApplyRequest(deployment_tag="blue", endpoints=[pb.Endpoint(host="10.0.0.1", port=80)]),
        metadata=admin,
    )
    stub.Apply(
        pb.ApplyRequest(bluegreen=True, endpoints=[pb.Endpoint(host="10.0.0.2", port=80)]),
        metadata=admin,
    )
    stub.SetTraffic(
        pb.SetTrafficRequest(
            weights=[pb.TagWeight(tag="blue", weight=90), pb.TagWeight(tag="green", weight=10)]
        ),
        metadata=admin,
    )
    yield Target(control.api_address, admin)
    control.stop()


@dataclass(frozen=True)
class Target:
    """Where to call, and the admin token's metadata to call with."""

    api_address: str
    metadata: tuple[tuple[str, str], ...]


def _export(channel: grpc.Channel, target: Target) -> str:
    stub = operator_pb2_grpc.OperatorStub(channel)
    reply = stub.ExportState(pb.ExportStateRequest(), timeout=10, metadata=target.metadata)
    return str(reply.document)


def _call(
    plane: Target,
    method: str,
    request: bytes,
    export_as: tuple[tuple[str, str], ...] | None = None,
) -> grpc.StatusCode:
    """One raw call; asserts the status is documented and a refusal changed nothing
    (the state read with ``export_as``, by default the call's own metadata)."""
    reader = plane if export_as is None else Target(plane.api_address, export_as)
    with grpc.insecure_channel(plane.api_address) as channel:
        before = _export(channel, reader)
        call = channel.unary_unary(f"/{SERVICE.full_name}/{method}")
        try:
            call(request, timeout=CALL_DEADLINE_S, metadata=plane.metadata)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            code, details = error.code(), error.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and method in MAY_WAIT:
            return code
        assert code in DOCUMENTED, f"{method}: {code.name} {details!r}"
        if code != grpc.StatusCode.OK:
            assert details, f"{method}: {code.name} without a message"
            assert _export(channel, reader) == before, (
                f"{method} refused ({details}) yet changed state"
            )
        return code


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_typed_requests(plane: Target, method: str) -> None:
    """Random well-typed requests for each method."""
    strategy = messages(SERVICE.methods_by_name[method].input_type)

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(request=strategy)
    def check(request: Any) -> None:
        _call(plane, method, request.SerializeToString())

    check()


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_raw_bytes(plane: Target, method: str) -> None:
    """Random bytes as the request of each method: refused as INVALID_ARGUMENT at worst."""

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(request=st.binary(max_size=200))
    def check(request: bytes) -> None:
        _call(plane, method, request)

    check()


def _call_as(plane: Target, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
    """An empty request with metadata that holds no valid token: refused by the guard."""
    code = _call(Target(plane.api_address, metadata), method, b"", export_as=plane.metadata)
    assert code == grpc.StatusCode.UNAUTHENTICATED, f"{method}: {code.name}"


# Header values gRPC can carry: printable ASCII, including near-misses of a real header.
HEADER_TEXT = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
    st.sampled_from(["Bearer", "Bearer ", "bearer xdst_", "Basic YWRtaW46YWRtaW4=", "xdst_x"]),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    method=st.sampled_from([m.name for m in SERVICE.methods]),
    header=st.one_of(st.none(), HEADER_TEXT, HEADER_TEXT.map(lambda t: f"Bearer {t}")),
)
def test_credentials_are_fuzzed_too(plane: Target, method: str, header: str | None) -> None:
    """Random authorization headers (or none) on every method: refused with
    UNAUTHENTICATED and a message (the server has tokens), never INTERNAL or UNKNOWN,
    and nothing changes."""
    _call_as(plane, method, () if header is None else (("authorization", header),))
