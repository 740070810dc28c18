"""Real libvirt for the libvirt driver's end-to-end tests: the daemons, a private network
and a storage pool per test run, the VM image, and a check that nothing was left behind.

- `ensure_daemons()` starts virtlogd and libvirtd (`-d`; there is no systemd here) when
  nothing answers at qemu:///system. They are system daemons other test runs may be using
  at the same time, so the tests never stop them.
- `PrivateNetwork` is a transient libvirt network (gone once destroyed, even if the test
  process dies before it could undefine anything) with a random name, its own bridge, and
  a /24 from 10.216.0.0/13 that no interface, route or other libvirt network uses, with or
  without DHCP. Services the VMs must reach (etcd, a manager) listen on its `host_ip`.
- `TestPool` names the storage pool the driver makes for a run's disks; `cleanup()`
  deletes its volumes, the pool and its folder.
- `build_image()` runs deploy/vm-image/build.sh (cached by the script's hash).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import random
import shutil
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

URI = "qemu:///system"
REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "vm-image" / "build.sh"
SUBNETS = ipaddress.ip_network("10.216.0.0/13")
ALLOC_LOCK = "/tmp/flock-test-libvirt.lock"


def _libvirt():
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    return libvirt


def connect():
    return _libvirt().open(URI)


def have_libvirt() -> tuple[bool, str]:
    """(usable, why not): libvirt-python, libvirtd and QEMU on this machine."""
    try:
        _libvirt()
    except ImportError:
        return False, "libvirt-python is not installed: pip install -e '.[libvirt]'"
    for tool in ("libvirtd", "virtlogd", "qemu-system-x86_64", "qemu-img", "debootstrap"):
        if shutil.which(tool) is None:
            return False, f"{tool} not found: run scripts/test.sh (it installs libvirt, QEMU)"
    return True, ""


def ensure_daemons(timeout: float = 30.0) -> None:
    libvirt = _libvirt()
    with contextlib.suppress(libvirt.libvirtError):
        connect().close()
        return
    subprocess.run(["virtlogd", "-d"], check=False, capture_output=True)
    subprocess.run(["libvirtd", "-d"], check=False, capture_output=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect().close()
            return
        except libvirt.libvirtError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"libvirtd does not answer at {URI}: {exc}") from None
        time.sleep(0.5)


def _used_networks(conn) -> list[ipaddress.IPv4Network]:
    nets: list[ipaddress.IPv4Network] = []
    texts = [subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
             for cmd in (["ip", "-o", "-4", "addr"], ["ip", "-4", "route", "show", "table",
                                                       "all"])]
    for text in texts:
        for word in text.split():
            if "/" in word or word.count(".") == 3:
                with contextlib.suppress(ValueError):
                    net = ipaddress.ip_network(word, strict=False)
                    if isinstance(net, ipaddress.IPv4Network):
                        nets.append(net)
    for net in conn.listAllNetworks(0):
        for ip in ET.fromstring(net.XMLDesc(0)).findall("ip"):
            with contextlib.suppress(ValueError, TypeError):
                nets.append(ipaddress.ip_network(
                    f"{ip.get('address')}/{ip.get('netmask') or ip.get('prefix')}",
                    strict=False))
    return nets


@dataclass
class PrivateNetwork:
    """A transient, isolated libvirt network (no NAT: the VMs reach this host only)."""

    dhcp: bool = True
    label: str = "t"
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    subnet: ipaddress.IPv4Network | None = None

    @property
    def name(self) -> str:
        return f"flock-{self.label}-{self.suffix}"

    @property
    def bridge(self) -> str:
        return f"vfl{self.label[:3]}{self.suffix}"[:15]

    @property
    def host_ip(self) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def xml(self) -> str:
        assert self.subnet is not None
        net = self.subnet
        dhcp = (f"<dhcp><range start='{net.network_address + 10}' "
                f"end='{net.network_address + 200}'/></dhcp>") if self.dhcp else ""
        return (f"<network><name>{self.name}</name>"
                f"<bridge name='{self.bridge}' stp='off' delay='0'/>"
                f"<ip address='{self.host_ip}' netmask='{net.netmask}'>{dhcp}</ip>"
                "</network>")

    def start(self) -> PrivateNetwork:
        conn = connect()
        try:
            with open(ALLOC_LOCK, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                used = _used_networks(conn)
                candidates = list(SUBNETS.subnets(new_prefix=24))
                random.shuffle(candidates)
                self.subnet = next(c for c in candidates
                                   if not any(c.overlaps(u) for u in used))
                conn.networkCreateXML(self.xml())
        finally:
            conn.close()
        return self

    def reserve(self, mac: str, ip: str) -> None:
        """A DHCP host entry: the VM with this MAC gets `ip` at its next DHCP request (an
        address change a test can cause, as a real network's can happen)."""
        libvirt = _libvirt()
        conn = connect()
        try:
            conn.networkLookupByName(self.name).update(
                libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1,
                f"<host mac='{mac}' ip='{ip}'/>", libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE)
        finally:
            conn.close()

    def stop(self) -> None:
        libvirt = _libvirt()
        conn = connect()
        try:
            with contextlib.suppress(libvirt.libvirtError):
                conn.networkLookupByName(self.name).destroy()
        finally:
            conn.close()


@dataclass
class TestPool:
    """A storage pool name of this run's own; the driver makes the pool (its default folder
    for a pool it makes is /var/lib/libvirt/images/NAME)."""

    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    @property
    def name(self) -> str:
        return f"flock-t-{self.suffix}"

    def volumes(self) -> list[str]:
        libvirt = _libvirt()
        conn = connect()
        try:
            pool = conn.storagePoolLookupByName(self.name)
            with contextlib.suppress(libvirt.libvirtError):
                pool.refresh(0)
            return sorted(pool.listVolumes())
        except libvirt.libvirtError:
            return []
        finally:
            conn.close()

    def cleanup(self) -> None:
        libvirt = _libvirt()
        conn = connect()
        try:
            pool = conn.storagePoolLookupByName(self.name)
        except libvirt.libvirtError:
            conn.close()
            return
        try:
            path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or ""
            if pool.isActive():
                for vol in pool.listAllVolumes(0):
                    with contextlib.suppress(libvirt.libvirtError):
                        vol.delete(0)
                pool.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                pool.delete(0)
            pool.undefine()
            if path.startswith("/var/lib/libvirt/images/flock-t-"):
                shutil.rmtree(path, ignore_errors=True)
        finally:
            conn.close()


def build_image(out_dir: Path, timeout: float = 1200) -> Path:
    """deploy/vm-image/build.sh OUT_DIR; instant when the cache has this script's build."""
    done = subprocess.run(["bash", str(BUILD), str(out_dir)], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the VM image failed ({done.returncode}):\n"
                           f"{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def leftovers(*names: str) -> list[str]:
    """Domains, networks and pools of these names that still exist at libvirt."""
    conn = connect()
    try:
        found = [f"domain {d.name()}" for d in conn.listAllDomains(0) if d.name() in names]
        found += [f"network {n.name()}" for n in conn.listAllNetworks(0) if n.name() in names]
        found += [f"pool {p.name()}" for p in conn.listAllStoragePools(0) if p.name() in names]
        return found
    finally:
        conn.close()


def remove_domain(name: str) -> None:
    """Destroy and undefine a domain of this name, if any (a test's last resort)."""
    libvirt = _libvirt()
    conn = connect()
    try:
        dom = conn.lookupByName(name)
        with contextlib.suppress(libvirt.libvirtError):
            dom.destroy()
        dom.undefine()
    except libvirt.libvirtError:
        pass
    finally:
        conn.close()
    for path in (f"/var/log/libvirt/qemu/{name}.log",
                 f"/var/log/libvirt/qemu/{name}-console.log"):
        with contextlib.suppress(OSError):
            Path(path).unlink()


def domain_mac(name: str) -> str:
    conn = connect()
    try:
        root = ET.fromstring(conn.lookupByName(name).XMLDesc(0))
        return root.find("devices/interface/mac").get("address")
    finally:
        conn.close()


def domain_names() -> list[str]:
    conn = connect()
    try:
        return sorted(d.name() for d in conn.listAllDomains(0))
    finally:
        conn.close()
