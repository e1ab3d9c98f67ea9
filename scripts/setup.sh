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
# The editable install is a plain path entry (compat mode): setuptools' default
# import hook costs every cachewhy command ~15 ms of start-up (pathlib, re).
stamp="$venv/.cachewhy-installed-compat"
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
  echo "setup: installing cachewhy and its test dependencies" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$repo[test]" \
    --config-settings editable_mode=compat >&2
  touch "$stamp"
fi
# Bytecode, as a regular install has it: where PYTHONDONTWRITEBYTECODE is set,
# every command would otherwise compile the modules it imports (~40 ms).
"$venv/bin/python" -m compileall -q "$repo/analyzer" >/dev/null

# Debian packages the tests use, installed when their command is missing
# (COMMAND:PACKAGE) and the caller asks for them (scripts/test.sh does):
# Graphviz's `dot` for --svg and the graph in --html, Chromium to open the
# --html page headless, docker-registry for the record-travels-with-the-cache
# tests (each test starts its own on 127.0.0.1; the package's service is
# disabled, it would listen on :5000). CACHEWHY_NO_APT=1 skips this.
debs=()
if [ "${CACHEWHY_SETUP_TESTS:-0}" = 1 ]; then
  for need in dot:graphviz chromium:chromium docker-registry:docker-registry; do
    command -v "${need%%:*}" >/dev/null 2>&1 || debs+=("${need#*:}")
  done
fi
if [ ${#debs[@]} -gt 0 ] && [ "${CACHEWHY_NO_APT:-0}" != 1 ]; then
  sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo -n)
  if command -v apt-get >/dev/null 2>&1 && { [ ${#sudo[@]} -eq 0 ] || command -v sudo >/dev/null 2>&1; }; then
    echo "setup: installing ${debs[*]} (apt-get)" >&2
    apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0)
    if ! "${apt[@]}" install -y --no-install-recommends "${debs[@]}" >/dev/null 2>&1; then
      # a fresh machine has no package lists yet
      { "${apt[@]}" update >&2 && "${apt[@]}" install -y --no-install-recommends "${debs[@]}" >/dev/null; } ||
        echo "setup: warning: could not install ${debs[*]}; the tests that need them fail under CI=true" >&2
    fi
    if [[ " ${debs[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      "${sudo[@]}" systemctl disable --now docker-registry >/dev/null 2>&1 || true
    fi
  else
    echo "setup: warning: ${debs[*]} missing (apt-get install --no-install-recommends ${debs[*]})" >&2
  fi
fi

if [ "${CACHEWHY_NO_ENGINE:-0}" != 1 ]; then
  bash "$repo/scripts/engine.sh" up
fi
echo "export PATH=\"$venv/bin:\$PATH\""
