#!/usr/bin/env bash
# A three-host Flock cluster on this machine (as root): three network namespaces with a
# dockerd and an agent each, etcd and two replicated managers; prints the DOCKER_HOST.
#   up.sh [--name NAME] [--state-dir DIR] [--subnet CIDR] [--tls] [--keep-on-failure] ...
# `up.sh --help` lists every option; README.md next to this file says more.
src="${BASH_SOURCE[0]}"
[[ "$src" == */* ]] || src="./$src"
exec "$BASH" "${src%/*}/_run.sh" up "$@"
