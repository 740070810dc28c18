#!/usr/bin/env bash
# Remove everything up.sh made: processes (by PID), mounts, namespaces, veths, the bridge
# and the state folder. Fine on a half-made cluster and when run twice.
#   down.sh [--name NAME] [--state-dir DIR] [--keep-logs]
src="${BASH_SOURCE[0]}"
[[ "$src" == */* ]] || src="./$src"
exec "$BASH" "${src%/*}/_run.sh" down "$@"
