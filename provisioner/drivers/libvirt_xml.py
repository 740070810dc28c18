"""The XML documents the libvirt driver hands to libvirt: the domain, its volumes, the
storage pool, and the few facts it reads back (guest types, MACs, disk paths).

Pure functions of their arguments, without libvirt-python, so what a VM is made of can be
read and tested in one place. Text goes through ElementTree, never string formatting, so a
machine name or a path can never break the document.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from dataclasses import dataclass

CMDLINE_LIMIT = 2048   # x86's COMMAND_LINE_SIZE: longer command lines are cut by the kernel
DEFAULT_CMDLINE = "root=/dev/vda rw console=ttyS0,115200 systemd.unified_cgroup_hierarchy=0"


@dataclass(frozen=True)
class DomainSpec:
    """Everything one VM is made of. `kernel`/`initrd` are paths on the libvirt host (direct
    kernel boot: the image needs no bootloader); `console_log` receives the serial console
    (kernel and boot messages), which is what explains a VM that never got an address."""

    name: str
    domain_type: str          # qemu (TCG emulation), kvm, or whatever the hypervisor offers
    arch: str
    memory_mib: int
    cpus: int
    disk: str
    disk_format: str
    network: str
    kernel: str
    initrd: str
    cmdline: str
    console_log: str = ""


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def _text(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode")


def domain_xml(spec: DomainSpec) -> str:
    """A domain that powers off on ACPI shutdown and is destroyed (not restarted) when its
    guest powers off or crashes, so `stop` ends in Stopped rather than a reboot loop."""
    dom = ET.Element("domain", type=spec.domain_type)
    _sub(dom, "name", spec.name)
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.cpus))
    os_ = _sub(dom, "os")
    _sub(os_, "type", "hvm", arch=spec.arch)
    _sub(os_, "kernel", spec.kernel)
    _sub(os_, "initrd", spec.initrd)
    _sub(os_, "cmdline", spec.cmdline)
    features = _sub(dom, "features")
    _sub(features, "acpi")     # `stop` sends an ACPI power button press
    _sub(features, "apic")
    _sub(dom, "clock", offset="utc")
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    dev = _sub(dom, "devices")
    # No USB controller: its early handoff alone costs the emulated kernel seconds.
    _sub(dev, "controller", type="usb", model="none")
    disk = _sub(dev, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type=spec.disk_format)
    _sub(disk, "source", file=spec.disk)
    _sub(disk, "target", dev="vda", bus="virtio")
    nic = _sub(dev, "interface", type="network")
    _sub(nic, "source", network=spec.network)
    _sub(nic, "model", type="virtio")
    serial = _sub(dev, "serial", type="pty")
    if spec.console_log:
        _sub(serial, "log", file=spec.console_log, append="off")
    _sub(serial, "target", port="0")
    console = _sub(dev, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    # Under emulation a guest waiting for entropy stalls sshd and Python: feed it the host's.
    rng = _sub(dev, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(dev, "memballoon", model="none")
    return _text(dom)


def volume_xml(name: str, capacity: int, fmt: str, *, mode: str = "0600",
               backing: str = "", backing_format: str = "") -> str:
    """A volume in a directory pool; with `backing`, a copy-on-write overlay of it."""
    vol = ET.Element("volume")
    _sub(vol, "name", name)
    _sub(vol, "capacity", str(capacity), unit="bytes")
    _sub(vol, "allocation", "0", unit="bytes")
    target = _sub(vol, "target")
    _sub(target, "format", type=fmt)
    perms = _sub(target, "permissions")
    _sub(perms, "mode", mode)
    if backing:
        store = _sub(vol, "backingStore")
        _sub(store, "path", backing)
        _sub(store, "format", type=backing_format or "qcow2")
    return _text(vol)


def pool_xml(name: str, path: str) -> str:
    """A directory pool whose folder the emulator's user (libvirt-qemu) can traverse."""
    pool = ET.Element("pool", type="dir")
    _sub(pool, "name", name)
    target = _sub(pool, "target")
    _sub(target, "path", path)
    perms = _sub(target, "permissions")
    _sub(perms, "mode", "0711")
    return _text(pool)


def kernel_cmdline(base: str, *, hostname: str, ssh_user: str, ssh_pubkey: str) -> str:
    """The image's command line plus what makes this VM this machine. The key is base64
    (the command line splits on spaces); the image's flock-vm-init writes it into the
    user's authorized_keys before sshd starts."""
    key = base64.b64encode(ssh_pubkey.strip().encode()).decode()
    line = (f"{base.strip() or DEFAULT_CMDLINE} systemd.hostname={hostname} "
            f"flock.ssh_user={ssh_user} flock.ssh_key={key}")
    if len(line) >= CMDLINE_LIMIT:
        raise ValueError(f"the kernel command line would be {len(line)} bytes, over the "
                         f"kernel's {CMDLINE_LIMIT}: use a shorter SSH key (RSA 2048 or "
                         "ed25519) or a shorter .cmdline next to the image")
    return line


def guest_types(caps_xml: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """(host arch, [(guest arch, [domain types])]) for hvm guests, from getCapabilities()."""
    root = ET.fromstring(caps_xml)
    host_arch = root.findtext("host/cpu/arch") or ""
    guests = []
    for guest in root.findall("guest"):
        if guest.findtext("os_type") != "hvm":
            continue
        arch = guest.find("arch")
        if arch is None:
            continue
        types = [d.get("type", "") for d in arch.findall("domain")]
        guests.append((arch.get("name", ""), [t for t in types if t]))
    return host_arch, guests


def domain_nics(dom_xml: str) -> list[tuple[str, str]]:
    """(MAC, network name) of each NIC; the network is '' for a NIC on no libvirt network."""
    out = []
    for nic in ET.fromstring(dom_xml).findall("devices/interface"):
        mac = nic.find("mac")
        source = nic.find("source")
        network = source.get("network", "") if source is not None else ""
        if mac is not None and mac.get("address"):
            out.append((mac.get("address", "").lower(), network))
    return out


def domain_disks(dom_xml: str) -> list[str]:
    return [s.get("file", "") for s in ET.fromstring(dom_xml).findall("devices/disk/source")
            if s.get("file")]


def volume_backing(vol_xml: str) -> str:
    return ET.fromstring(vol_xml).findtext("backingStore/path") or ""


def network_has_dhcp(net_xml: str) -> bool:
    return ET.fromstring(net_xml).find("ip/dhcp") is not None


def pool_path(pool_xml_text: str) -> str:
    return ET.fromstring(pool_xml_text).findtext("target/path") or ""
