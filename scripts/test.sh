#!/usr/bin/env bash
# Set everything up (Python environment, BuildKit engine, base image, and the
# Debian packages the tests use: Graphviz, Chromium, docker-registry), then
# run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
eval "$(CACHEWHY_SETUP_TESTS=1 bash "$repo/scripts/setup.sh")"
cd "$repo"
python -m pytest "$@"
