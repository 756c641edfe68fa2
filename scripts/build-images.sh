#!/usr/bin/env bash
# Build (or find) clabgen/node and clabgen/vyos-emu on the local engine.
# The logic lives in src/clabgen/images.py (also used by the runtimes via
# ensure_images()); the recipes are under images/. Needs root and an engine
# (scripts/docker-up.sh). Args are passed on: --force, --json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m clabgen.images "$@"
