"""The `libvirt` driver: a VM per machine through libvirt-python (default qemu:///system).

A machine is a domain named after it, booting the image's own kernel directly (kernel,
initrd and command line from the files deploy/vm-image/build.sh puts next to the image),
with a qcow2 overlay disk in a libvirt storage pool (see libvirt_storage for why a pool)
and one virtio NIC on a libvirt network. The machine's SSH public key goes on the kernel
command line (`flock.ssh_key=`, base64), where the image's flock-vm-init service puts it
into authorized_keys before sshd starts: no cloud-init, whose Python start-up alone takes
minutes under emulation, and no seed ISO to build and clean up. The IP is always asked of
libvirt (the network's DHCP lease table, newest lease first; the domain's LEASE and ARP
addresses where libvirt keeps no table), never read from dnsmasq's files, and never
stored: a restarted VM may get another one, and until it asks DHCP again the lease from
before the restart is ignored.

The domain type is `qemu` (TCG emulation) unless KVM is proven to work (libvirt_conn).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from flock.provisioner.drivers import libvirt_storage as storage
from flock.provisioner.drivers import libvirt_xml as lx
from flock.provisioner.drivers.base import Driver, Progress, SSHDetails
from flock.provisioner.drivers.libvirt_conn import (
    DOMAIN_TYPES,
    choose_guest,
    connect,
    domain_ipv4,
    error_text,
    is_local,
    leases,
    libvirt_module,
)
from flock.provisioner.errors import DriverError, HostNotRunning, MachineError
from flock.provisioner.states import State

ENV_IMAGE = "FLOCK_LIBVIRT_IMAGE"
DEFAULT_URI = "qemu:///system"
IP_STEP = "Waiting for the VM's IP address"
STOP_STEP = "Waiting for the VM to shut down"
STOP_TIMEOUT = 120.0
POLL = 1.0
GIB = 2**30
CONSOLE_DIR = "/var/log/libvirt/qemu"

# libvirt domain states -> Docker Machine states
_STATES = {0: State.NONE, 1: State.RUNNING, 2: State.RUNNING, 3: State.PAUSED,
           4: State.STOPPING, 5: State.STOPPED, 6: State.ERROR, 7: State.PAUSED}


class LibvirtDriver(Driver):
    name = "libvirt"

    def __init__(self, machine_name: str, machine_dir: Path, *, uri: str = DEFAULT_URI,
                 memory: int = 1024, cpus: int = 1, disk_size: int = 10,
                 network: str = "default", image: str = "", pool: str = storage.DEFAULT_POOL,
                 ssh_user: str = "root", domain_type: str = "qemu",
                 ip_timeout: float = 300.0) -> None:
        super().__init__(machine_name, machine_dir)
        self.uri, self.memory, self.cpus, self.disk_size = uri, memory, cpus, disk_size
        self.network, self.image, self.pool_name = network, image, pool
        self.ssh_user, self.domain_type, self.ip_timeout = ssh_user, domain_type, ip_timeout
        self.domain = machine_name
        self.uuid = ""            # the domain this machine made: never another of its name
        self.volume = ""          # the overlay's volume name, once made
        self.console_log = ""     # the serial console's log on the libvirt host
        self._conn: Any = None

    # --- flags and records -------------------------------------------------------------
    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        add = parser.add_argument
        add("--libvirt-uri", default=DEFAULT_URI, metavar="URI",
            help=f"libvirt driver: the hypervisor's URI (default {DEFAULT_URI})")
        add("--libvirt-memory", type=int, default=1024, metavar="MIB",
            help="libvirt driver: memory in MiB (default 1024)")
        add("--libvirt-cpu-count", type=int, default=1, metavar="N",
            help="libvirt driver: virtual CPUs (default 1)")
        add("--libvirt-disk-size", type=int, default=10, metavar="GIB",
            help="libvirt driver: disk size in GiB; the image's file system grows to it at "
                 "boot (default 10)")
        add("--libvirt-network", default="default", metavar="NAME",
            help="libvirt driver: the libvirt network of the NIC (default 'default')")
        add("--libvirt-image", default=None, metavar="PATH",
            help="libvirt driver: the base image (qcow2), with .vmlinuz/.initrd/.cmdline "
                 "next to it as deploy/vm-image/build.sh makes them (default: "
                 f"${ENV_IMAGE})")
        add("--libvirt-pool", default=storage.DEFAULT_POOL, metavar="NAME",
            help="libvirt driver: the storage pool for disks, made when missing (default "
                 f"{storage.DEFAULT_POOL}, in {storage.DEFAULT_POOL_PATH})")
        add("--libvirt-ssh-user", default="root", metavar="USER",
            help="libvirt driver: the user to SSH in as (default root)")
        add("--libvirt-domain-type", default="qemu", choices=DOMAIN_TYPES,
            help="libvirt driver: qemu (emulation, works everywhere), kvm, or auto: kvm "
                 "when a quick boot of the image's kernel proves KVM works here (default "
                 "qemu)")
        add("--libvirt-ip-timeout", type=float, default=300.0, metavar="SECONDS",
            help="libvirt driver: how long a booting VM may take to get an IP (default 300)")

    @classmethod
    def from_flags(cls, machine_name: str, machine_dir: Path,
                   args: argparse.Namespace) -> LibvirtDriver:
        def arg(name: str, default: Any) -> Any:
            value = getattr(args, f"libvirt_{name}", None)
            return default if value is None else value

        image = arg("image", "") or os.environ.get(ENV_IMAGE, "")
        driver = cls(machine_name, machine_dir, uri=arg("uri", DEFAULT_URI),
                     memory=arg("memory", 1024), cpus=arg("cpu_count", 1),
                     disk_size=arg("disk_size", 10), network=arg("network", "default"),
                     image=str(Path(image).expanduser().absolute()) if image else "",
                     pool=arg("pool", storage.DEFAULT_POOL), ssh_user=arg("ssh_user", "root"),
                     domain_type=arg("domain_type", "qemu"),
                     ip_timeout=arg("ip_timeout", 300.0))
        driver._check_values()
        return driver

    def _check_values(self) -> None:
        if self.memory < 128:
            raise MachineError(f"--libvirt-memory {self.memory}: give at least 128 (MiB); "
                               "the image boots in 256, Flock's agent wants 512 or more")
        if self.cpus < 1:
            raise MachineError(f"--libvirt-cpu-count {self.cpus}: give 1 or more")
        if self.disk_size < 0:
            raise MachineError(f"--libvirt-disk-size {self.disk_size}: give a size in GiB "
                               "(0 keeps the image's own size)")
        if self.ip_timeout <= 0:
            raise MachineError(f"--libvirt-ip-timeout {self.ip_timeout:g}: give seconds > 0")
        for flag, value in (("network", self.network), ("pool", self.pool_name),
                            ("ssh-user", self.ssh_user), ("uri", self.uri)):
            if not value or any(c.isspace() for c in value):
                raise MachineError(f"--libvirt-{flag} {value!r}: give a non-empty name "
                                   "without spaces")
        if self.domain_type not in DOMAIN_TYPES:
            raise MachineError(f"--libvirt-domain-type {self.domain_type}: use one of "
                               f"{', '.join(DOMAIN_TYPES)}")

    def to_dict(self) -> dict[str, Any]:
        return {"URI": self.uri, "Memory": self.memory, "CPU": self.cpus,
                "DiskSize": self.disk_size, "Network": self.network, "Image": self.image,
                "Pool": self.pool_name, "SSHUser": self.ssh_user,
                "DomainType": self.domain_type, "IPTimeout": self.ip_timeout,
                "Domain": self.domain, "UUID": self.uuid, "Volume": self.volume,
                "ConsoleLog": self.console_log}

    @classmethod
    def load(cls, machine_name: str, machine_dir: Path, data: dict[str, Any],
             secrets: dict[str, Any]) -> LibvirtDriver:
        driver = cls(machine_name, machine_dir, uri=data.get("URI", DEFAULT_URI),
                     memory=int(data.get("Memory", 1024)), cpus=int(data.get("CPU", 1)),
                     disk_size=int(data.get("DiskSize", 10)),
                     network=data.get("Network", "default"), image=data.get("Image", ""),
                     pool=data.get("Pool", storage.DEFAULT_POOL),
                     ssh_user=data.get("SSHUser", "root"),
                     domain_type=data.get("DomainType", "qemu"),
                     ip_timeout=float(data.get("IPTimeout", 300.0)))
        driver.domain = data.get("Domain") or machine_name
        driver.uuid = data.get("UUID", "")
        driver.volume = data.get("Volume", "")
        driver.console_log = data.get("ConsoleLog", "")
        return driver

    # --- libvirt handles ---------------------------------------------------------------
    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = connect(self.uri)
        return self._conn

    def _find_domain(self) -> Any | None:
        """The machine's domain, by the UUID it was made with; None before it was made or
        once it is gone."""
        if not self.uuid:
            return None
        libvirt = libvirt_module()
        try:
            return self.conn.lookupByUUIDString(self.uuid)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise DriverError(f"libvirt domain {self.domain}: {error_text(exc)}") from None

    def _domain_named(self, name: str) -> bool:
        libvirt = libvirt_module()
        try:
            self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return False
            raise DriverError(f"libvirt domain {name}: {error_text(exc)}") from None
        return True

    def _domain(self) -> Any:
        dom = self._find_domain()
        if dom is None:
            why = (f"libvirt domain {self.domain} at {self.uri} is gone: it was removed "
                   "outside Flock" if self.uuid else "its create failed before the VM was made")
            raise DriverError(f"machine {self.machine_name} has no VM ({why}); "
                              f'"flock machine rm {self.machine_name}" forgets it')
        return dom

    def _network(self) -> Any:
        libvirt = libvirt_module()
        try:
            return self.conn.networkLookupByName(self.network)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise DriverError(f"libvirt network {self.network}: {error_text(exc)}") from None
        names = sorted(n.name() for n in self.conn.listAllNetworks(0))
        raise MachineError(f"--libvirt-network {self.network}: no such libvirt network at "
                           f"{self.uri}; use one of {', '.join(names) or '(none defined)'} "
                           "(virsh net-list --all) or define one (virsh net-define)")

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        libvirt = libvirt_module()
        try:
            return fn(*args)
        except libvirt.libvirtError as exc:
            raise DriverError(f"{what} {self.domain}: {error_text(exc)}") from None

    # --- lifecycle ---------------------------------------------------------------------
    def pre_create_check(self) -> None:
        storage.ImageFiles.find(self.image)
        self._network()
        if self._domain_named(self.domain):
            raise MachineError(f"a libvirt domain named {self.domain} already exists at "
                               f"{self.uri}: pick another machine name, or remove it (virsh "
                               f"destroy {self.domain}; virsh undefine {self.domain})")
        choose_guest(self.conn, self.uri, self.domain_type if self.domain_type != "auto"
                     else "qemu")

    def create(self, progress: Progress) -> None:
        image = storage.ImageFiles.find(self.image)
        pubkey = self._public_key()
        arch, dom_type = choose_guest(self.conn, self.uri, self.domain_type,
                                      str(image.kernel))
        net = self._network()
        made_volume = made_domain = False
        try:
            if not net.isActive():
                progress(f"Starting libvirt network {self.network}")
                try:
                    net.create()
                except libvirt_module().libvirtError as exc:
                    raise DriverError(f"cannot start libvirt network {self.network}: "
                                      f"{error_text(exc)}; try 'virsh net-start "
                                      f"{self.network}'") from None
            pool = storage.ensure_pool(self.conn, self.pool_name, progress)
            base = storage.ensure_base(self.conn, pool, image, progress)
            volume = f"{self.domain}.qcow2"
            if storage.find_volume(pool, volume) is not None:
                raise MachineError(f"a volume {volume} already exists in storage pool "
                                   f"{self.pool_name}: remove it (virsh vol-delete --pool "
                                   f"{self.pool_name} {volume}) or pick another name")
            progress(f"Creating the disk {volume} ({self.disk_size} GiB, backed by "
                     f"{image.disk.name})")
            capacity = max(self.disk_size * GIB, image.virtual_size)
            disk = storage.create_overlay(pool, volume, base["disk"], image.fmt, capacity)
            self.volume, made_volume = volume, True
            self.console_log = self._console_path()
            spec = lx.DomainSpec(
                name=self.domain, domain_type=dom_type, arch=arch, memory_mib=self.memory,
                cpus=self.cpus, disk=disk.path(), disk_format="qcow2", network=self.network,
                kernel=base["kernel"], initrd=base["initrd"],
                cmdline=self._cmdline(image.cmdline, pubkey, dom_type),
                console_log=self.console_log)
            progress(f"Starting the VM ({dom_type}, {self.cpus} CPU, {self.memory} MiB)")
            dom = self._call("defining domain", self.conn.defineXML, lx.domain_xml(spec))
            self.uuid, made_domain = dom.UUIDString(), True
            self._call("starting domain", dom.create)
            ip = self._wait_ip(progress, frozenset())
            progress(f"The VM has the IP {ip}")
        except BaseException:
            self._undo(made_volume, made_domain)
            raise

    def _undo(self, made_volume: bool, made_domain: bool) -> None:
        """A failed create leaves nothing it made at libvirt (base volumes stay: they are a
        cache), and never touches what it did not make (a domain of the same name)."""
        if made_domain:
            with contextlib.suppress(Exception):
                self._remove_domain()
                self.uuid = ""
            self._remove_console_log()
        if made_volume:
            with contextlib.suppress(Exception):
                storage.delete_volume(self.conn.storagePoolLookupByName(self.pool_name),
                                      self.volume)
                self.volume = ""
        if not self.uuid:
            self.console_log = ""

    def _public_key(self) -> str:
        path = self.machine_dir / "id_rsa.pub"
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise MachineError(f"cannot read the machine's SSH public key {path} "
                               f"({exc.strerror}): it is made before the VM; remove the "
                               f'machine ("flock machine rm -f {self.machine_name}") and '
                               "create it again") from None

    def _cmdline(self, base: str, pubkey: str, dom_type: str) -> str:
        if dom_type == "qemu" and "no_timer_check" not in base.split():
            # Emulated on a busy host, the kernel's IO-APIC timer check fails and it panics
            # ("IO-APIC + timer doesn't work!") before it mounts anything.
            base = f"{base} no_timer_check"
        try:
            return lx.kernel_cmdline(base, hostname=self.machine_name, ssh_user=self.ssh_user,
                                     ssh_pubkey=pubkey)
        except ValueError as exc:
            raise MachineError(str(exc)) from None

    def _console_path(self) -> str:
        """The serial console's log, for qemu:///system on this host (where virtlogd writes
        as root); elsewhere the console is only a pty (virsh console NAME)."""
        if self.uri.startswith("qemu") and self.uri.endswith("/system") and is_local(self.uri):
            return f"{CONSOLE_DIR}/{self.domain}-console.log"
        return ""

    def _console_tail(self, lines: int = 8) -> str:
        if not self.console_log or not is_local(self.uri):
            return ""
        try:
            text = Path(self.console_log).read_text(errors="replace")
        except OSError:
            return ""
        tail = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
        return ("; the console's last lines:\n  " + "\n  ".join(tail)) if tail else ""

    def _remove_console_log(self) -> None:
        """The console log and libvirt's own log of the domain (qemu:///system on this
        host): both are named after a domain that no longer exists."""
        if self.console_log and is_local(self.uri):
            for path in (self.console_log, f"{CONSOLE_DIR}/{self.domain}.log"):
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def _wait_ip(self, progress: Progress, stale: frozenset) -> str:
        """Until the VM has an address; `stale` are the leases it had before it was
        (re)started, which say nothing of the address it will get this time."""
        progress(f"{IP_STEP} (DHCP on network {self.network}, up to {self.ip_timeout:g} s)")
        dom = self._domain()
        deadline = time.monotonic() + self.ip_timeout
        while True:
            ip = domain_ipv4(self.conn, dom, stale)
            if ip:
                return ip
            state = self._state_of(dom)
            if state is not State.RUNNING:
                raise MachineError(f"the VM stopped while booting (state {state})"
                                   + self._console_tail(), step=IP_STEP)
            if time.monotonic() >= deadline:
                raise MachineError(
                    f"no IP address after {self.ip_timeout:g} s: libvirt reports no DHCP "
                    f"lease nor ARP entry for the VM on network {self.network}. Check that "
                    f"the network hands out addresses (virsh net-dumpxml {self.network}) "
                    "and that the image brings up its NIC with DHCP; give a slow host more "
                    "time with --libvirt-ip-timeout" + self._console_tail(), step=IP_STEP)
            time.sleep(POLL)

    def remove(self) -> None:
        self._remove_domain()
        if self.volume:
            libvirt = libvirt_module()
            try:
                pool = self.conn.storagePoolLookupByName(self.pool_name)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
                    raise DriverError(f"storage pool {self.pool_name}: "
                                      f"{error_text(exc)}") from None
            else:
                storage.delete_volume(pool, self.volume)
        self._remove_console_log()

    def _remove_domain(self) -> None:
        dom = self._find_domain()
        if dom is None:
            return
        libvirt = libvirt_module()
        if dom.isActive():
            self._destroy(dom)
        # Managed-save images, snapshot metadata and NVRAM go with the domain; hypervisors
        # that know fewer of these flags get fewer.
        every = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                 | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        for flags in (every | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM, every, 0):
            try:
                dom.undefineFlags(flags)
                return
            except libvirt.libvirtError as exc:
                code = exc.get_error_code()
                if code == libvirt.VIR_ERR_NO_DOMAIN:
                    return
                if flags and code in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT):
                    continue
                raise DriverError(f"undefining domain {self.domain}: "
                                  f"{error_text(exc)}") from None

    def _destroy(self, dom: Any) -> None:
        libvirt = libvirt_module()
        try:
            dom.destroy()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:   # not running
                raise DriverError(f"destroying domain {self.domain}: "
                                  f"{error_text(exc)}") from None

    def start(self) -> None:
        """Boot the VM and wait for its IP: the caller's next step is SSH or certs."""
        dom = self._domain()
        stale: frozenset = frozenset()
        if not dom.isActive():
            # Leases from before this boot stay in libvirt's table until they expire: the
            # address is the one the VM asks for (or renews) from now on.
            stale = frozenset(leases(self.conn, dom) or ())
            self._call("starting domain", dom.create)   # also restores a managed save
        elif self._state_of(dom) is State.PAUSED:
            self._call("resuming domain", dom.resume)
        self._wait_ip(lambda _msg: None, stale)

    def stop(self) -> None:
        """ACPI power button, then up to STOP_TIMEOUT for the guest to power off; a guest
        that does not (no ACPI handling, hung) is destroyed."""
        dom = self._domain()
        if not dom.isActive():
            return
        libvirt = libvirt_module()
        with contextlib.suppress(libvirt.libvirtError):
            if self._state_of(dom) is State.PAUSED:
                dom.resume()          # a paused guest cannot see the power button
            dom.shutdown()
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            if not dom.isActive():
                return
            time.sleep(POLL)
        self._destroy(dom)

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        dom = self._domain()
        if dom.isActive():
            self._destroy(dom)

    # --- questions ---------------------------------------------------------------------
    def _state_of(self, dom: Any) -> State:
        libvirt = libvirt_module()
        try:
            code, reason = dom.state(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return State.ERROR
            raise DriverError(f"state of domain {self.domain}: {error_text(exc)}") from None
        if code == libvirt.VIR_DOMAIN_SHUTOFF and self._has_managed_save(dom):
            return State.SAVED
        if code == libvirt.VIR_DOMAIN_PAUSED and reason == libvirt.VIR_DOMAIN_PAUSED_SAVE:
            return State.SAVED
        return _STATES.get(code, State.ERROR)

    @staticmethod
    def _has_managed_save(dom: Any) -> bool:
        with contextlib.suppress(Exception):
            return bool(dom.hasManagedSaveImage(0))
        return False

    def state(self) -> State:
        """A VM that no longer exists at libvirt is in Error (`rm` cleans up)."""
        dom = self._find_domain()
        return State.ERROR if dom is None else self._state_of(dom)

    def ip(self) -> str:
        dom = self._domain()
        if not dom.isActive():
            raise HostNotRunning(self.machine_name)
        ip = domain_ipv4(self.conn, dom)
        if not ip:
            raise MachineError(f"machine {self.machine_name} has no IP address yet (libvirt "
                               f"knows no DHCP lease or ARP entry on network {self.network})")
        return ip

    def ssh_details(self) -> SSHDetails:
        return SSHDetails(host=self.ip(), port=22, user=self.ssh_user,
                          key_path=str((self.machine_dir / "id_rsa").absolute()))
