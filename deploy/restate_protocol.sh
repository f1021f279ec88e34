#!/usr/bin/env bash
# Generates partitions/remote/restate_protocol_pb2.py{,i} from the vendored restate_protocol.proto
# with grpcio-tools' protoc (a dev dependency). tests/partitions/remote/test_wire.py checks that
# the committed files are what this makes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../partitions/remote"
"${PYTHON:-python}" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. restate_protocol.proto
