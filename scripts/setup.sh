#!/usr/bin/env bash
# Set up everything cachewhy needs on this machine: a Python virtual
# environment with the package installed (editable) and a BuildKit engine
# (the user's own docker buildx when it works, else a private dockerd).
# Prints the environment to use on stdout: eval "$(scripts/setup.sh)".
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CACHEWHY_VENV:-$repo/.venv}
py=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv" >&2
  "$py" -m venv "$venv"
fi
stamp="$venv/.cachewhy-installed"
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
  echo "setup: installing cachewhy and its test dependencies" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo[test]" >&2
  touch "$stamp"
fi

if [ "${CACHEWHY_NO_ENGINE:-0}" != 1 ]; then
  bash "$repo/scripts/engine.sh" up
fi
echo "export PATH=\"$venv/bin:\$PATH\""
