"""Where everything of one local cluster lives: names, addresses, ports and paths.

Everything is derived from the cluster's name (interface and namespace names) and its
state folder (files), so that `down` finds what `up` made even when `up` died half way;
the subnet and the processes started are recorded in `state.json` as they happen.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from localcluster import UsageError

HOSTS = 3
DEFAULT_NAME = "flock-local"
STATE_ROOT = Path("/var/tmp/flock-local-cluster")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
AGENT_PORT = 4000
# unix socket paths must fit in sun_path (108 bytes with the NUL); dockerd's containerd
# puts "<exec-root>/containerd/containerd.sock.ttrpc" there.
SOCKET_MAX = 100


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"invalid --name {name!r}: use 1 to 31 lower-case letters, digits "
                         "and dashes, starting with a letter or digit (e.g. flock-local)")
    return name


def default_state_dir(name: str) -> Path:
    return STATE_ROOT / name


@dataclass
class Proc:
    """One process the cluster started, identified by PID and start time (so that a
    recycled PID is never taken for ours)."""

    role: str  # etcd, dockerd, agent, manager
    label: str  # etcd, host-1, manager-a ...
    pid: int
    start: int  # /proc/PID/stat start time, clock ticks since boot
    netns: str = ""
    log: str = ""
    addr: str = ""


@dataclass
class Layout:
    name: str
    state_dir: Path
    subnet: str = ""  # e.g. 10.201.7.0/24, chosen by `up`
    etcd_port: int = 2379
    manager_port: int = 2375  # manager A; manager B listens on the next port
    tls: bool = False
    procs: list[Proc] = field(default_factory=list)

    # ------------------------------------------------------------- names
    @property
    def tag(self) -> str:
        """Six hex digits of the name: interface names have at most 15 characters."""
        return hashlib.sha1(self.name.encode()).hexdigest()[:6]

    @property
    def bridge(self) -> str:
        return f"flc{self.tag}-br"

    def veth(self, index: int) -> str:
        """The host side of host-<index>'s link; the namespace side is its eth0."""
        return f"flc{self.tag}-h{index}"

    def netns(self, index: int) -> str:
        return f"{self.name}-host-{index}"

    @staticmethod
    def host(index: int) -> str:
        return f"host-{index}"

    @property
    def indexes(self) -> range:
        return range(1, HOSTS + 1)

    # ------------------------------------------------------------- addresses
    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def bridge_ip(self) -> str:
        return str(self.network.network_address + 1)

    def host_ip(self, index: int) -> str:
        return str(self.network.network_address + 1 + index)

    @property
    def prefixlen(self) -> int:
        return self.network.prefixlen

    @property
    def etcd_peer_port(self) -> int:
        return self.etcd_port + 1

    @property
    def discovery(self) -> str:
        return f"etcd://{self.bridge_ip}:{self.etcd_port}/flock"

    @property
    def managers(self) -> list[tuple[str, str]]:
        """(label, HOST:PORT) of manager A (started first: the primary) and B."""
        return [("manager-a", f"{self.bridge_ip}:{self.manager_port}"),
                ("manager-b", f"{self.bridge_ip}:{self.manager_port + 1}")]

    # ------------------------------------------------------------- paths
    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def host_dir(self, index: int) -> Path:
        return self.state_dir / self.host(index)

    def docker_socket(self, index: int) -> Path:
        return self.host_dir(index) / "docker.sock"

    def exec_root(self, index: int) -> Path:
        return self.host_dir(index) / "exec"

    def own_entries(self) -> set[str]:
        """The names `up` makes in the state folder: nothing else there is ever deleted."""
        return {"state.json", "state.tmp", "logs", "etcd", "pki",
                *(self.host(i) for i in self.indexes)}

    def foreign_entries(self) -> list[str]:
        if not self.state_dir.is_dir():
            return []
        return sorted(e.name for e in self.state_dir.iterdir()
                      if e.name not in self.own_entries())

    def check_paths(self) -> None:
        longest = self.exec_root(HOSTS) / "containerd" / "containerd.sock.ttrpc"
        if len(str(longest)) > SOCKET_MAX:
            raise UsageError(f"the state folder {self.state_dir} is too long: the "
                             f"engines' sockets under it would exceed {SOCKET_MAX} "
                             "characters; choose a shorter one with --state-dir (e.g. "
                             "/var/tmp/flc)")

    def check_state_dir(self) -> None:
        """A new, empty or earlier state folder: up.sh may never adopt other files (down.sh
        deletes what it finds of its own there)."""
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise UsageError(f"--state-dir {self.state_dir} is a file: give a folder")
        foreign = self.foreign_entries()
        if foreign:
            raise UsageError(f"the state folder {self.state_dir} holds other files "
                             f"({', '.join(foreign[:5])}): give a new or empty folder with "
                             "--state-dir (down.sh deletes the state folder)")

    # ------------------------------------------------------------- record
    def save(self) -> None:
        """Write state.json atomically (a crash leaves the old or the new record)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.state_file)

    def add(self, proc: Proc) -> None:
        self.procs.append(proc)
        self.save()

    @classmethod
    def load(cls, name: str, state_dir: Path) -> Layout:
        """The recorded layout, or a bare one (names and paths only) when there is no
        usable record: enough for `down` to remove namespaces and interfaces."""
        layout = cls(name=name, state_dir=state_dir)
        try:
            data = json.loads(layout.state_file.read_text())
        except (OSError, ValueError):
            return layout
        if data.get("name") != name:
            raise UsageError(f"{layout.state_file} belongs to cluster {data.get('name')!r}, "
                             f"not {name!r}: pass --name {data.get('name')}")
        layout.subnet = str(data.get("subnet") or "")
        layout.etcd_port = int(data.get("etcd_port") or layout.etcd_port)
        layout.manager_port = int(data.get("manager_port") or layout.manager_port)
        layout.tls = bool(data.get("tls"))
        layout.procs = [Proc(**p) for p in data.get("procs", [])]
        return layout

    @property
    def recorded(self) -> bool:
        return self.state_file.exists()
