"""Real Docker Engines for tests: each with its own data root, exec root, socket,
pidfile, containerd namespace and bridge, so that two test runs (or two engines in one
run) never touch each other. Stopped by PID; the bridge is deleted afterwards.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass

from flock.busybox import busybox_rootfs_tar


def have_dockerd() -> bool:
    return shutil.which("dockerd") is not None and os.geteuid() == 0


def need_dockerd() -> None:
    """Fail (not skip) a test that needs an engine where none can start: a missing
    dockerd is a broken test machine, not a reason to pass quietly."""
    import pytest

    if not have_dockerd():
        pytest.fail("dockerd is not installed (or not root): run scripts/test.sh")


@dataclass
class Engine:
    """A running dockerd started by a test."""

    root: pathlib.Path
    bridge: str | None
    proc: subprocess.Popen

    @property
    def socket(self) -> str:
        return str(self.root / "docker.sock")

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True, input: bytes | None = None):
        """Run the real docker CLI against this engine."""
        return subprocess.run(
            ["docker", "-H", self.url, *args],
            check=check, capture_output=True, input=input, timeout=120,
        )

    def import_busybox(self, ref: str = "busybox:latest") -> None:
        self.docker("import", "-c", 'CMD ["sh"]', "-", ref, input=busybox_rootfs_tar())

    def stop(self) -> None:
        _stop_engine(self)


def _free_subnet() -> str:
    """A /24 in 10.213.0.0/16 not already on an interface of this machine."""
    used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    for _ in range(200):
        third = random.randint(1, 254)
        prefix = f"10.213.{third}."
        if prefix not in used:
            return f"{prefix}1/24"
    raise RuntimeError("no free test subnet in 10.213.0.0/16")


def start_engine(
    root: pathlib.Path,
    bridge: bool = True,
    timeout: float = 60,
    labels: dict[str, str] | None = None,
    tls: tuple[str, str, str] | None = None,
    tcp: str | None = None,
) -> Engine:
    """Start a dockerd under `root`. With bridge=False it runs with --bridge=none;
    `labels` become engine labels (`--label k=v`). `tcp` ("IP:PORT") also listens there,
    with `tls` (CA, server cert, server key) as --tlsverify: clients need a cert signed
    by that CA."""
    root.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    bridge_name = None
    args = [
        "dockerd",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "-H", f"unix://{root / 'docker.sock'}",
        "--pidfile", str(root / "docker.pid"),
        "--iptables=false",
        "--ip-masq=false",
        "--containerd-namespace", f"flk{tag}",
        "--containerd-plugins-namespace", f"flk{tag}p",
    ]
    for key, value in (labels or {}).items():
        args += ["--label", f"{key}={value}"]
    if tcp:
        args += ["-H", f"tcp://{tcp}"]
    if tls:
        ca, cert, key = tls
        args += ["--tlsverify", "--tlscacert", ca, "--tlscert", cert, "--tlskey", key]
    if bridge:
        bridge_name = f"flk{tag}"
        subnet = _free_subnet()
        subprocess.run(["ip", "link", "add", bridge_name, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", subnet, "dev", bridge_name], check=True)
        subprocess.run(["ip", "link", "set", bridge_name, "up"], check=True)
        args += ["--bridge", bridge_name]
    else:
        args += ["--bridge=none"]
    log = open(root / "dockerd.log", "wb")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    engine = Engine(root=root, bridge=bridge_name, proc=proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _stop_engine(engine)
            raise RuntimeError(f"dockerd exited: {(root / 'dockerd.log').read_text()[-2000:]}")
        if engine.docker("version", check=False).returncode == 0:
            return engine
        time.sleep(0.3)
    _stop_engine(engine)
    raise RuntimeError(f"dockerd did not answer in {timeout}s")


def _stop_engine(engine: Engine) -> None:
    bridges: list[str] = []
    if engine.proc.poll() is None:
        try:
            engine.docker("rm", "-f", *_all_containers(engine), check=False)
            # dockerd keeps the bridges of its user-defined networks (compose projects,
            # `docker network create`) when it stops; left behind, they hold Docker's
            # default address pools, and a later run's engines find none free.
            bridges = _network_bridges(engine)
            engine.docker("network", "prune", "-f", check=False)
        except Exception:
            pass
        engine.proc.send_signal(signal.SIGTERM)
        try:
            engine.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(engine.proc.pid, signal.SIGKILL)
            engine.proc.wait(timeout=10)
    # dockerd's own containerd and shims live in its process group.
    try:
        os.killpg(engine.proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for bridge in [engine.bridge, *bridges]:
        if bridge:
            delete_bridge(bridge)
    unmount_below(engine.root)


def delete_bridge(bridge: str) -> None:
    """The bridge and the veths still on it: an engine killed with containers running
    leaves their veth pairs in this namespace, and a bridge's removal does not take its
    ports with it."""
    ports = subprocess.run(["ip", "-o", "link", "show", "master", bridge],
                           capture_output=True, text=True).stdout
    for line in ports.splitlines():
        name = line.split(":", 2)[1].strip().split("@", 1)[0]
        subprocess.run(["ip", "link", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def _network_bridges(engine: Engine) -> list[str]:
    """The Linux bridges of the engine's user-defined bridge networks."""
    ids = engine.docker("network", "ls", "-q", "--no-trunc", "--filter", "driver=bridge",
                        check=False).stdout.decode().split()
    if not ids:
        return []
    found = engine.docker("network", "inspect", *ids, check=False).stdout
    try:
        networks = json.loads(found or b"[]")
    except ValueError:
        return []
    return [(n.get("Options") or {}).get("com.docker.network.bridge.name")
            or f"br-{n['Id'][:12]}" for n in networks
            if n.get("Name") != "bridge" and n.get("Id")]


def unmount_below(root: pathlib.Path) -> None:
    """Unmount everything dockerd left under `root` (netns bind mounts of --network host
    containers included), deepest first, so the folder can be removed."""
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _all_containers(engine: Engine) -> list[str]:
    out = engine.docker("ps", "-aq", check=False).stdout.decode().split()
    return out or ["--"]
