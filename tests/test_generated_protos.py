"""The committed generated code matches protos/ (run scripts/gen_protos.sh after edits)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor

from xds_server.envoy_metrics import metrics_service_pb2, prometheus_metrics_pb2
from xds_server.v1 import operator_pb2

ROOT = Path(__file__).resolve().parent.parent

# proto file → the module generated from it, one line per file of scripts/gen_protos.sh.
GENERATED = {
    "xds_server/v1/operator.proto": operator_pb2.DESCRIPTOR,
    "xds_server/envoy_metrics/prometheus_metrics.proto": prometheus_metrics_pb2.DESCRIPTOR,
    "xds_server/envoy_metrics/metrics_service.proto": metrics_service_pb2.DESCRIPTOR,
}


def _without_json_names(messages: list[descriptor_pb2.DescriptorProto]) -> None:
    # protoc fills in default json_names that generated code leaves out.
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _without_json_names(list(message.nested_type))


@pytest.mark.parametrize("proto", sorted(GENERATED))
def test_generated_code_is_fresh(tmp_path: Path, proto: str) -> None:
    """Compiling protos/ again gives exactly the descriptor the committed code carries."""
    out = tmp_path / "descriptor.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--descriptor_set_out={out}",
            proto,
        ],
        check=True,
        cwd=ROOT,
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _without_json_names(list(fresh.message_type))
    descriptor: FileDescriptor = GENERATED[proto]
    committed = descriptor_pb2.FileDescriptorProto.FromString(descriptor.serialized_pb)
    assert fresh == committed, "generated code is stale: run scripts/gen_protos.sh"


@pytest.mark.parametrize("proto", sorted(GENERATED))
def test_generated_files_are_the_generators_output(tmp_path: Path, proto: str) -> None:
    """The committed files are byte for byte what scripts/gen_protos.sh makes."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            proto,
        ],
        check=True,
        cwd=ROOT,
    )
    stem = proto.removesuffix(".proto")
    for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
        generated = (tmp_path / f"{stem}{suffix}").read_text()
        committed = (ROOT / f"{stem}{suffix}").read_text()
        assert generated == committed, f"{stem}{suffix} is stale: run scripts/gen_protos.sh"
