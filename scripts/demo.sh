#!/usr/bin/env bash
# Set everything up, then build the bundled demo project (testdata/demo) twice
# with cachewhy, changing one line of src/app.py in between: the second run
# shows which steps were rebuilt. The demo works on a copy; the repo is untouched.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
eval "$(bash "$repo/scripts/setup.sh")"

work=$(mktemp -d "${TMPDIR:-/tmp}/cachewhy-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -r "$repo/testdata/demo" "$work/demo"

echo "== build 1: the demo as it is" >&2
cachewhy build -t cachewhy-demo:latest "$work/demo"

# a new line each run, so earlier demo runs cannot have cached it
echo "VERSION = \"$(date +%s%N)\"" >> "$work/demo/src/app.py"
echo >&2
echo "== build 2: after adding one line to src/app.py" >&2
cachewhy build -t cachewhy-demo:latest "$work/demo"
