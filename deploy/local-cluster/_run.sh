#!/usr/bin/env bash
# Shared by up.sh and down.sh: find a Python that has Flock and run
# `python -m localcluster COMMAND ...` (the package next to this file).
# FLOCK_PYTHON picks the Python; else the checkout's .venv (scripts/quickstart.sh makes
# it), else python3 with the checkout on PYTHONPATH.
set -euo pipefail
src="${BASH_SOURCE[0]}"
[[ "$src" == */* ]] || src="./$src"
here="$(cd "${src%/*}" && pwd)"
repo="$(cd "$here/../.." && pwd)"
py="${FLOCK_PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then
    py="$repo/.venv/bin/python"
  elif command -v python3 >/dev/null; then
    py="$(command -v python3)"
  else
    echo "local-cluster: error: no Python 3 here: install python3 and run" \
         "\`bash scripts/quickstart.sh\` in $repo first" >&2
    exit 1
  fi
fi
export PYTHONPATH="$here:$repo${PYTHONPATH:+:$PYTHONPATH}"
exec "$py" -m localcluster "$@"
