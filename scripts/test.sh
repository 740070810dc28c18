#!/usr/bin/env bash
# Install everything the tests need, then run the whole suite.
#   Debian packages: docker.io (dockerd), busybox-static (the test image), iproute2
#   (bridges for the test engines), etcd-server, docker-registry, docker-compose,
#   python3-venv, openssh-server, libvirt + QEMU, debootstrap; Python packages:
#   flock[test] in .venv.
# Run as root (the tests start real Docker Engines). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v busybox >/dev/null || need+=(busybox-static)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)  # the exec runtime's outbound NAT
command -v etcd >/dev/null || need+=(etcd-server)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v docker-compose >/dev/null || need+=(docker-compose)
# flock machine: a real sshd for the generic driver, libvirt + QEMU for the libvirt driver
# (libvirt-dev and pkg-config build libvirt-python), debootstrap for the VM image.
command -v sshd >/dev/null || need+=(openssh-server openssh-client)
command -v libvirtd >/dev/null || need+=(libvirt-daemon-system libvirt-clients dnsmasq-base)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86 qemu-utils)
pkg-config --exists libvirt 2>/dev/null || need+=(libvirt-dev pkg-config)
command -v debootstrap >/dev/null || need+=(debootstrap)
# `flock machine mount` mounts a machine's folder with sshfs (FUSE).
command -v sshfs >/dev/null || need+=(sshfs)
# The cluster page (/ui) is tested in headless Chromium driven by Selenium.
command -v chromium >/dev/null || need+=(chromium chromium-driver)
# `flock machine env --shell fish` is checked by running its output in fish.
command -v fish >/dev/null || need+=(fish)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  echo "== installing Debian packages: ${need[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
echo "== installing Python packages"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"

echo "== ruff"
.venv/bin/ruff check .
echo "== pytest"
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
