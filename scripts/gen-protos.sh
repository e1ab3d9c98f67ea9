#!/usr/bin/env bash
# Generate the Python gRPC stubs of protos/*.proto into analyzer/buildkit/
# (or into the folder given as $1: the unit test regenerates into a temporary
# folder and compares the bytes with the committed stubs).
# Needs grpcio-tools (in the dev and test extras): .venv/bin/pip install -e '.[dev]'
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/analyzer/buildkit}"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py=python3
mkdir -p "$out"
cd "$root/protos"
"$py" -m grpc_tools.protoc -I . --python_out="$out" --grpc_python_out="$out" control.proto content.proto
# protoc writes top-level imports (`import control_pb2`); the stubs live in a package
for f in "$out"/control_pb2_grpc.py "$out"/content_pb2_grpc.py; do
    sed -i -E 's/^import (control|content)_pb2 as /from . import \1_pb2 as /' "$f"
done
