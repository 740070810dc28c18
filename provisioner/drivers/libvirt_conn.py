"""Talking to libvirt: the lazily imported module, connections with errors that say what
to do, and the choice of domain type (KVM only when it is proven to work here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flock.provisioner.drivers import libvirt_xml as lx
from flock.provisioner.errors import DriverError, MachineError

DOMAIN_TYPES = ("auto", "qemu", "kvm")
KVM_CHECK_TIMEOUT = 15.0
_module: Any = None


def libvirt_module() -> Any:
    """libvirt-python, imported on first use, with its default error handler (which
    prints every failed call to stderr, even those the driver expects) silenced: errors
    reach the user once, as MachineError messages."""
    global _module
    if _module is None:
        from flock.provisioner.drivers import require
        mod = require("libvirt", "libvirt")
        mod.registerErrorHandler(lambda _ctx, _err: None, None)
        _module = mod
    return _module


def error_text(exc: Exception) -> str:
    get = getattr(exc, "get_error_message", None)
    return (get() if get else None) or str(exc)


def connect(uri: str) -> Any:
    libvirt = libvirt_module()
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        hint = ("is libvirtd running (libvirtd -d, or systemctl start libvirtd) and are you "
                "root or in the libvirt group?")
        if "://" not in uri:
            hint = "give a libvirt URI such as qemu:///system"
        raise DriverError(f"cannot connect to libvirt at --libvirt-uri {uri}: "
                          f"{error_text(exc)}; {hint}") from None
    if conn is None:
        raise DriverError(f"cannot connect to libvirt at --libvirt-uri {uri}")
    return conn


Lease = tuple[str, int]   # (IPv4 address, expiry time): dnsmasq renews = a new expiry


def leases(conn: Any, dom: Any) -> list[Lease] | None:
    """The IPv4 DHCP leases of the domain's NICs, newest first, from their libvirt
    networks' lease tables; None when libvirt keeps none for them (a hypervisor without
    them, a network it does not manage)."""
    libvirt = libvirt_module()
    found: list[Lease] = []
    known = False
    for mac, network in lx.domain_nics(dom.XMLDesc(0)):
        try:
            entries = conn.networkLookupByName(network).DHCPLeases(mac, 0) or []
        except libvirt.libvirtError:
            continue
        known = True
        found += [(e["ipaddr"], int(e.get("expirytime") or 0)) for e in entries
                  if e.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4 and e.get("ipaddr")]
    return sorted(found, key=lambda lease: -lease[1]) if known else None


def domain_ipv4(conn: Any, dom: Any, stale: set[Lease] | frozenset = frozenset()) -> str:
    """The VM's IPv4 address, as libvirt knows it: its network's DHCP lease table (the
    newest lease not in `stale`, i.e. not one from before a restart), else the domain's
    LEASE addresses, else the host's ARP table; '' when none knows one yet."""
    libvirt = libvirt_module()
    table = leases(conn, dom)
    if table:
        return next((ip for ip, expiry in table if (ip, expiry) not in stale), "")
    macs = {mac for mac, _ in lx.domain_nics(dom.XMLDesc(0))}
    for source in (libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
                   libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP):
        try:
            ifaces = dom.interfaceAddresses(source, 0) or {}
        except libvirt.libvirtError:
            continue
        for info in ifaces.values():
            if macs and (info.get("hwaddr") or "").lower() not in macs:
                continue
            for addr in info.get("addrs") or []:
                if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4 and addr.get("addr"):
                    return addr["addr"]
    return ""


def is_local(uri: str) -> bool:
    """Whether the hypervisor runs on this host (no host part in the URI)."""
    return not urllib.parse.urlsplit(uri).netloc


def choose_guest(conn: Any, uri: str, wanted: str, kernel: str = "") -> tuple[str, str]:
    """(arch, domain type) for the VM, from what the hypervisor offers (pick_type)."""
    host_arch, guests = lx.guest_types(conn.getCapabilities())
    if not guests:
        raise DriverError(f"libvirt at {uri} offers no hvm guests (virsh capabilities)")
    return pick_type(host_arch, guests, wanted, uri,
                     lambda: is_local(uri) and bool(kernel) and kvm_works(kernel))


def pick_type(host_arch: str, guests: list[tuple[str, list[str]]], wanted: str, uri: str,
              kvm_check: Callable[[], bool]) -> tuple[str, str]:
    """`qemu` (TCG emulation) and `kvm` are taken as asked when the hypervisor offers them.
    `auto`: kvm only when offered AND `kvm_check` proves it works (on these machines
    /dev/kvm exists and a trivial guest even runs, but a real kernel hangs before its first
    message); otherwise qemu. A hypervisor that is not QEMU (libvirt's test driver) offers
    its own type, which is used whatever was asked."""
    arch, types = next(((a, t) for a, t in guests if a == host_arch), guests[0])
    if "qemu" not in types and "kvm" not in types:
        return arch, types[0]
    if wanted in ("qemu", "kvm"):
        if wanted not in types:
            raise MachineError(f"--libvirt-domain-type {wanted}: libvirt at {uri} offers "
                               f"{', '.join(types)} for {arch} guests; pass one of those or "
                               "auto")
        return arch, wanted
    if "kvm" in types and kvm_check():
        return arch, "kvm"
    return arch, "qemu" if "qemu" in types else types[0]


def kvm_works(kernel: str) -> bool:
    """Boot `kernel` under QEMU with KVM, without a root file system: a working KVM gets it
    to "VFS: Unable to mount root fs" and, with panic=-1 and -no-reboot, QEMU exits within
    a few seconds. Silence until KVM_CHECK_TIMEOUT means KVM hangs here. The verdict is
    kept for this boot of the host (/run/lock), so only the first create pays for it."""
    verdict_file = _verdict_path()
    try:
        return Path(verdict_file).read_text().strip() == "works"
    except OSError:
        pass
    qemu = shutil.which("qemu-system-x86_64")
    ok = False
    if qemu and os.access("/dev/kvm", os.R_OK | os.W_OK):
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "console.log"
            try:
                subprocess.run(
                    [qemu, "-accel", "kvm", "-M", "pc", "-m", "256", "-nodefaults",
                     "-no-user-config", "-display", "none", "-no-reboot",
                     "-serial", f"file:{log}", "-kernel", kernel,
                     "-append", "console=ttyS0 panic=-1 loglevel=4"],
                    stdin=subprocess.DEVNULL, capture_output=True,
                    timeout=KVM_CHECK_TIMEOUT, check=False)
                ok = b"Kernel panic" in log.read_bytes()
            except (OSError, subprocess.TimeoutExpired):
                ok = False
    with contextlib.suppress(OSError):
        Path(verdict_file).write_text("works\n" if ok else "hangs\n")
    return ok


def _verdict_path() -> str:
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = "unknown"
    folder = "/run/lock" if os.access("/run/lock", os.W_OK) else tempfile.gettempdir()
    return os.path.join(folder, f"flock-libvirt-kvm-{boot[:8]}")
