#!/usr/bin/env bash
# Set everything up (Python environment, BuildKit engine, base image), then
# run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
eval "$(bash "$repo/scripts/setup.sh")"
cd "$repo"
python -m pytest "$@"
