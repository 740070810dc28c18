"""A "host" for provisioning tests: a network namespace with a real sshd.

The namespace gets a veth pair to the test's side, a private subnet chosen from
10.200.0.0/13 that no interface or route on this machine uses, and an sshd of its own
(own config, host key, authorized_keys and pidfile in the test's folder) that lets root in
by key only. Programs started over that SSH (dockerd, the agent) run inside the namespace:
they see only its network, and the test reaches them at `ip`. Services the namespace must
reach (etcd, a manager) listen on `host_ip`, the test side of the veth.

`ip netns exec` gives its child a fresh /sys, which drops the cgroup mounts dockerd needs;
sshd is started through a small script that mounts the same cgroup hierarchies again in
that (private) mount namespace, so a session looks like a normal host's.

`stop()` kills every process of the namespace (and their children, such as containers
that live in network namespaces of their own), then deletes the namespace and the veth.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import random
import shlex
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

POOL = ipaddress.ip_network("10.200.0.0/13")
SSHD = "/usr/sbin/sshd"
ALLOC_LOCK = "/tmp/flock-test-netns.lock"
CONTROLLERS = {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
               "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"}


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network on an interface or in a route of this (root) namespace, and of
    every other namespace (another test's host side is a route here, its inside is not)."""
    nets: list[ipaddress.IPv4Network] = []
    outputs = [_run("ip", "-o", "-4", "addr", check=False).stdout,
               _run("ip", "-4", "route", "show", "table", "all", check=False).stdout]
    for line in _run("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name:
            outputs.append(_run("ip", "-n", name, "-o", "-4", "addr", check=False).stdout)
    for text in outputs:
        for word in text.split():
            if "/" in word or word.count(".") == 3:
                with contextlib.suppress(ValueError):
                    nets.append(ipaddress.ip_network(word, strict=False))
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def _pick_subnet(size: int) -> ipaddress.IPv4Network:
    prefix = 32 - max(2, (size - 1).bit_length())
    used = _used_networks()
    candidates = list(POOL.subnets(new_prefix=prefix))
    for _ in range(500):
        net = random.choice(candidates)
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free /{prefix} in {POOL} for a test namespace")


def _cgroup_mounts() -> list[tuple[str, str, str]]:
    """(fstype, mount point, options) of this machine's cgroup mounts, in mount order."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            point = fields[4]
            if point.startswith("/sys/fs/cgroup"):
                opts = [o for o in tail[2].split(",") if o not in ("rw", "ro")]
                if tail[0] == "cgroup" and not any(o in CONTROLLERS for o in opts):
                    opts.insert(0, "none")   # a named hierarchy without controllers
                out.append((tail[0], point, ",".join(opts)))
    return out


class NetnsHost:
    """One namespace host. `start()` it, `authorize(pub)` a key, `stop()` it."""

    def __init__(self, root: Path, extra_ips: int = 0, label: str = "") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        self.name = f"flk{label[:4]}{tag}"
        self.veth_host = f"fh{tag}h"
        self.veth_ns = f"fh{tag}n"
        self.extra_count = extra_ips
        self.network: ipaddress.IPv4Network | None = None
        self.host_ip = ""
        self.ip = ""
        self.extra_ips: list[str] = []
        self.port = 22
        self.sshd: subprocess.Popen | None = None
        self.authorized_keys = self.root / "authorized_keys"
        self.config = self.root / "sshd_config"
        self.host_key = self.root / "ssh_host_ed25519_key"
        self.log = self.root / "sshd.log"

    # --- life ------------------------------------------------------------------------------
    def start(self, timeout: float = 20) -> NetnsHost:
        try:
            self._make_network()
            self._start_sshd(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _make_network(self) -> None:
        lock = os.open(ALLOC_LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)   # two runs never pick the same subnet
            self.network = _pick_subnet(2 + self.extra_count + 2)
            hosts = [str(h) for h in self.network.hosts()]
            self.host_ip, self.ip = hosts[0], hosts[1]
            self.extra_ips = hosts[2:2 + self.extra_count]
            plen = self.network.prefixlen
            _run("ip", "netns", "add", self.name)
            _run("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name",
                 self.veth_ns)
            _run("ip", "link", "set", self.veth_ns, "netns", self.name)
            _run("ip", "addr", "add", f"{self.host_ip}/{plen}", "dev", self.veth_host)
            _run("ip", "link", "set", self.veth_host, "up")
        finally:
            os.close(lock)
        for addr in [self.ip, *self.extra_ips]:
            self.exec("ip", "addr", "add", f"{addr}/{self.network.prefixlen}", "dev",
                      self.veth_ns)
        self.exec("ip", "link", "set", self.veth_ns, "up")
        self.exec("ip", "link", "set", "lo", "up")

    def _start_sshd(self, timeout: float) -> None:
        if not self.host_key.exists():
            _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key))
        self.authorized_keys.touch(mode=0o600)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)   # sshd's privsep folder
        self.config.write_text("\n".join([
            f"ListenAddress {self.ip}",
            *[f"ListenAddress {ip}" for ip in self.extra_ips],
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {self.root / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
            "MaxStartups 100",
            "",
        ]))
        mounts = _cgroup_mounts()
        script = []
        if not any(point == "/sys/fs/cgroup" for _, point, _ in mounts):
            script.append("mount -t tmpfs -o mode=755 cgroup-root /sys/fs/cgroup")
        for fstype, point, opts in mounts:
            script.append(f"mkdir -p {shlex.quote(point)}")
            script.append(f"mount -t {fstype} -o {shlex.quote(opts or 'rw')} {fstype} "
                          f"{shlex.quote(point)}")
        script.append(f"exec {SSHD} -D -e -f {shlex.quote(str(self.config))}")
        with open(self.log, "ab") as log:
            self.sshd = subprocess.Popen(
                ["ip", "netns", "exec", self.name, "sh", "-ec", "\n".join(script)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                raise RuntimeError(f"sshd in {self.name} exited:\n{self.log_tail()}")
            if self.port_open(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"sshd in {self.name} did not listen in {timeout}s:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        """Kill everything in the namespace, then remove it and the veth. Safe to repeat."""
        for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
            pids = self.pids()
            if not pids:
                break
            for pid in pids | _descendants(pids):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + (5 if sig == signal.SIGTERM else 3)
            while time.monotonic() < deadline and self.pids():
                time.sleep(0.1)
        if self.sshd is not None:
            with contextlib.suppress(Exception):
                self.sshd.wait(timeout=5)
        _run("ip", "netns", "del", self.name, check=False)
        _run("ip", "link", "del", self.veth_host, check=False)

    # --- use -------------------------------------------------------------------------------
    def authorize(self, public_key: str) -> None:
        with open(self.authorized_keys, "a") as out:
            out.write(public_key.strip() + "\n")

    def reach(self, ip: str) -> None:
        """Let the namespace reach `ip`, an address of this (root) namespace on another
        interface (another namespace's host side, where a shared etcd listens)."""
        self.exec("ip", "route", "replace", f"{ip}/32", "via", self.host_ip)

    def revoke_all(self) -> None:
        self.authorized_keys.write_text("")

    def exec(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a command inside the namespace (network only: not through sshd)."""
        return _run("ip", "netns", "exec", self.name, *args, check=check)

    def pids(self) -> set[int]:
        out = _run("ip", "netns", "pids", self.name, check=False).stdout
        return {int(p) for p in out.split() if p.isdigit()}

    def port_open(self, port: int, ip: str = "") -> bool:
        with contextlib.suppress(OSError), socket.create_connection((ip or self.ip, port),
                                                                     timeout=0.5):
            return True
        return False

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> NetnsHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _descendants(pids: set[int]) -> set[int]:
    """Children of `pids`, recursively (containers in network namespaces of their own)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = list(pids)
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in out and child not in pids:
                out.add(child)
                todo.append(child)
    return out
