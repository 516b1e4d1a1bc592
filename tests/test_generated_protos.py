"""The committed generated code matches protos/ (run scripts/gen_protos.sh after edits)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from xds_server.v1 import operator_pb2

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    """Compiling protos/ again gives exactly the descriptor the committed code carries."""
    out = tmp_path / "operator.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--descriptor_set_out={out}",
            "xds_server/v1/operator.proto",
        ],
        check=True,
        cwd=ROOT,
    )
    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    # protoc fills in default json_names that generated code leaves out.
    for message in fresh.message_type:
        for field in message.field:
            field.ClearField("json_name")
    committed = descriptor_pb2.FileDescriptorProto.FromString(operator_pb2.DESCRIPTOR.serialized_pb)
    assert fresh == committed, "generated code is stale: run scripts/gen_protos.sh"


def test_generated_files_are_the_generators_output(tmp_path: Path) -> None:
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
            "xds_server/v1/operator.proto",
        ],
        check=True,
        cwd=ROOT,
    )
    for name in ("operator_pb2.py", "operator_pb2.pyi", "operator_pb2_grpc.py"):
        generated = (tmp_path / "xds_server" / "v1" / name).read_text()
        committed = (ROOT / "xds_server" / "v1" / name).read_text()
        assert generated == committed, f"{name} is stale: run scripts/gen_protos.sh"
