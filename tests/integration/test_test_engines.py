"""The engines tests start (tests/support/engines.py) leave nothing on the machine: a
user-defined network's bridge outlives dockerd otherwise, and each one left holds one
of Docker's default address pools (about 30 in all), until a later run's engines find
none free."""

from __future__ import annotations

import subprocess

from tests.support import engines


def _links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":", 2)[1].strip().split("@", 1)[0] for line in out.splitlines()}


def test_a_stopped_engine_leaves_no_bridge_even_with_a_container_on_its_own_network(
        tmp_path_factory):
    engines.need_dockerd()
    # A short folder: containerd's socket path under it must fit a unix socket's 108.
    engine = engines.start_engine(tmp_path_factory.mktemp("hyg") / "engine")
    try:
        engine.import_busybox()
        network = engine.docker("network", "create", "hygiene").stdout.decode().strip()
        engine.docker("run", "-d", "--network", "hygiene", "busybox", "sleep", "600")
        own = {engine.bridge, f"br-{network[:12]}"}
        assert own <= _links()
        ports = subprocess.run(["ip", "-o", "link", "show", "master", f"br-{network[:12]}"],
                               capture_output=True, text=True).stdout
        assert ports  # the container's veth is on the network's bridge
    finally:
        engine.stop()
    assert not own & _links()
    veth = ports.split(":", 2)[1].strip().split("@", 1)[0]
    assert veth not in _links()
