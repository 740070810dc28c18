#!/usr/bin/env bash
# Install Flock in .venv and run the main job: a local cluster (a manager and two agents
# on the embedded runtime) with containers placed through its Docker API.
# Needs root only to install Debian packages when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v busybox >/dev/null || need+=(busybox-static)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e .
exec .venv/bin/flock demo "$@"
