#!/usr/bin/env bash
# Regenerates the Python code for our operator API and for Envoy's metrics sink
# (protos/xds_server/envoy_metrics: wire copies of what xds-protos lacks) from protos/.
# Needs the dev extras (grpcio-tools, pinned in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Iprotos \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  protos/xds_server/v1/*.proto
python -m grpc_tools.protoc -Iprotos \
  --python_out=. --pyi_out=. --grpc_python_out=. \
  protos/xds_server/envoy_metrics/*.proto
