"""The libvirt driver against libvirt's built-in `test:///default` hypervisor (in-process,
no daemon): the domain it defines, its lifecycle and state mapping, what a failed create
leaves behind, and a clear error for every bad input.

The test hypervisor keeps its state for the whole process, so every test uses its own
machine and pool names. It cannot upload volumes, so the tests that create machines put
the image's base volumes into the pool first (through libvirt, as an earlier create would
have), and one test checks that a failed upload is reported and cleaned up.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

libvirt = pytest.importorskip("libvirt")

from flock.provisioner.drivers import driver_class  # noqa: E402
from flock.provisioner.drivers import libvirt_conn as conn_mod  # noqa: E402
from flock.provisioner.drivers import libvirt_storage as storage  # noqa: E402
from flock.provisioner.drivers import libvirt_xml as lx  # noqa: E402
from flock.provisioner.drivers.libvirt import LibvirtDriver  # noqa: E402
from flock.provisioner.drivers.libvirt_conn import connect  # noqa: E402
from flock.provisioner.errors import DriverError, HostNotRunning, MachineError  # noqa: E402
from flock.provisioner.ssh import ensure_key_pair  # noqa: E402
from flock.provisioner.states import State  # noqa: E402

TEST_URI = "test:///default"
REPO = Path(__file__).resolve().parents[2]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    LibvirtDriver.add_flags(parser)
    return parser.parse_args(list(argv))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A real (empty) qcow2 with a kernel, initrd and command line next to it."""
    folder = tmp_path / "image"
    folder.mkdir()
    disk = folder / "flock-vm.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1G"], check=True)
    (folder / "flock-vm.vmlinuz").write_bytes(b"kernel" * 100)
    (folder / "flock-vm.initrd").write_bytes(b"initrd" * 50)
    (folder / "flock-vm.cmdline").write_text("root=/dev/vda rw console=ttyS0\n")
    return disk


@pytest.fixture
def conn():
    c = connect(TEST_URI)
    yield c
    c.close()


def seed_base(conn, pool_name: str, disk: Path) -> dict[str, str]:
    """The base volumes an earlier create would have uploaded (same names, same sizes)."""
    pool = storage.ensure_pool(conn, pool_name, lambda _m: None)
    image = storage.ImageFiles.find(str(disk))
    files = {"disk": image.disk, "kernel": image.kernel, "initrd": image.initrd}
    for role, name in image.base_names().items():
        size = files[role].stat().st_size
        pool.createXML(f"<volume><name>{name}</name><capacity>{size}</capacity>"
                       f"<allocation>{size}</allocation></volume>", 0)
    return image.base_names()


def new_driver(tmp_path: Path, image: Path, *flags: str, name: str = "") -> LibvirtDriver:
    name = name or unique("vm")
    machine_dir = tmp_path / "machines" / name
    machine_dir.mkdir(parents=True)
    ensure_key_pair(machine_dir)
    args = parse("--libvirt-uri", TEST_URI, "--libvirt-image", str(image), *flags)
    return LibvirtDriver.from_flags(name, machine_dir, args)


def volumes(conn, pool_name: str) -> list[str]:
    return sorted(conn.storagePoolLookupByName(pool_name).listVolumes())


# --- the documents ---------------------------------------------------------------------
def test_domain_xml_boots_the_kernel_with_a_virtio_disk_and_nic():
    spec = lx.DomainSpec(name="web-1", domain_type="qemu", arch="x86_64", memory_mib=768,
                         cpus=2, disk="/pool/web-1.qcow2", disk_format="qcow2",
                         network="flocknet", kernel="/pool/k", initrd="/pool/i",
                         cmdline="root=/dev/vda rw", console_log="/log/web-1-console.log")
    root = ET.fromstring(lx.domain_xml(spec))
    assert root.get("type") == "qemu"
    assert root.findtext("name") == "web-1"
    assert (root.findtext("memory"), root.find("memory").get("unit")) == ("768", "MiB")
    assert root.findtext("vcpu") == "2"
    assert root.find("os/type").get("arch") == "x86_64"
    assert [root.findtext(f"os/{t}") for t in ("kernel", "initrd", "cmdline")] == \
        ["/pool/k", "/pool/i", "root=/dev/vda rw"]
    assert root.find("features/acpi") is not None      # stop = ACPI power button
    assert root.findtext("on_poweroff") == "destroy"
    disk = root.find("devices/disk")
    assert disk.find("driver").get("type") == "qcow2"
    assert disk.find("source").get("file") == "/pool/web-1.qcow2"
    assert disk.find("target").attrib == {"dev": "vda", "bus": "virtio"}
    nic = root.find("devices/interface")
    assert nic.get("type") == "network"
    assert nic.find("source").get("network") == "flocknet"
    assert nic.find("model").get("type") == "virtio"
    assert root.find("devices/serial/log").get("file") == "/log/web-1-console.log"
    assert root.find("devices/rng/backend").text == "/dev/urandom"


def test_names_and_paths_cannot_break_the_xml():
    spec = lx.DomainSpec(name="a<b>&c", domain_type="qemu", arch="x86_64", memory_mib=256,
                         cpus=1, disk="/p/'\"x", disk_format="qcow2", network="n&m",
                         kernel="/k", initrd="/i", cmdline="x=<y>")
    root = ET.fromstring(lx.domain_xml(spec))
    assert root.findtext("name") == "a<b>&c"
    assert root.find("devices/disk/source").get("file") == "/p/'\"x"
    assert root.findtext("os/cmdline") == "x=<y>"


def test_kernel_cmdline_carries_host_name_user_and_key():
    key = "ssh-rsa AAAAB3NzaC1yc2E= web-1"
    line = lx.kernel_cmdline("root=/dev/vda rw", hostname="web-1", ssh_user="root",
                             ssh_pubkey=key + "\n")
    words = line.split()
    assert words[:2] == ["root=/dev/vda", "rw"]
    assert "systemd.hostname=web-1" in words and "flock.ssh_user=root" in words
    encoded = next(w for w in words if w.startswith("flock.ssh_key=")).split("=", 1)[1]
    assert base64.b64decode(encoded).decode() == key
    with pytest.raises(ValueError, match="over the kernel's 2048"):
        lx.kernel_cmdline("root=/dev/vda", hostname="h", ssh_user="root",
                          ssh_pubkey="ssh-rsa " + "A" * 2000)


def test_overlay_volume_names_its_backing_file():
    root = ET.fromstring(lx.volume_xml("m.qcow2", 10 * 2**30, "qcow2", backing="/p/base.qcow2",
                                       backing_format="qcow2"))
    assert root.findtext("capacity") == str(10 * 2**30)
    assert root.find("target/format").get("type") == "qcow2"
    assert root.findtext("backingStore/path") == "/p/base.qcow2"
    assert root.find("backingStore/format").get("type") == "qcow2"
    assert lx.volume_backing(ET.tostring(root, encoding="unicode")) == "/p/base.qcow2"


def test_nics_are_read_back_with_their_network():
    xml = ("<domain><devices><interface type='network'><mac address='52:54:00:AA:bb:01'/>"
           "<source network='n1'/></interface><interface type='bridge'>"
           "<mac address='52:54:00:aa:bb:02'/><source bridge='br0'/></interface>"
           "<interface type='user'/></devices></domain>")
    assert lx.domain_nics(xml) == [("52:54:00:aa:bb:01", "n1"), ("52:54:00:aa:bb:02", "")]


# --- flags -----------------------------------------------------------------------------
def test_flags_have_docker_machine_names_and_defaults(tmp_path, monkeypatch, image):
    monkeypatch.setenv("FLOCK_LIBVIRT_IMAGE", str(image))
    d = LibvirtDriver.from_flags("m1", tmp_path, parse())
    assert (d.uri, d.memory, d.cpus, d.disk_size, d.network, d.ssh_user, d.domain_type) == \
        ("qemu:///system", 1024, 1, 10, "default", "root", "qemu")
    assert d.image == str(image)
    d = LibvirtDriver.from_flags("m1", tmp_path, parse(
        "--libvirt-memory", "512", "--libvirt-cpu-count", "2", "--libvirt-disk-size", "3",
        "--libvirt-network", "other", "--libvirt-image", str(image), "--libvirt-pool", "p",
        "--libvirt-ssh-user", "debian", "--libvirt-domain-type", "auto"))
    assert (d.memory, d.cpus, d.disk_size, d.network, d.pool_name, d.ssh_user,
            d.domain_type) == (512, 2, 3, "other", "p", "debian", "auto")


def test_record_round_trips_without_absolute_machine_paths(tmp_path, image):
    machine_dir = tmp_path / "machines" / "m2"
    d = LibvirtDriver.from_flags("m2", machine_dir, parse("--libvirt-image", str(image)))
    d.uuid, d.volume = "0f0f", "m2.qcow2"
    again = driver_class("libvirt").load("m2", machine_dir, d.to_dict(), {})
    assert again.to_dict() == d.to_dict()
    assert str(machine_dir) not in str(d.to_dict())
    assert d.secrets() == {}


@pytest.mark.parametrize(("flags", "message"), [
    (("--libvirt-memory", "64"), "--libvirt-memory 64: give at least 128"),
    (("--libvirt-cpu-count", "0"), "--libvirt-cpu-count 0: give 1 or more"),
    (("--libvirt-disk-size", "-1"), "--libvirt-disk-size -1"),
    (("--libvirt-ip-timeout", "0"), "--libvirt-ip-timeout 0"),
    (("--libvirt-network", ""), "--libvirt-network ''"),
])
def test_bad_values_are_refused_naming_the_flag(tmp_path, image, flags, message):
    with pytest.raises(MachineError, match=message.replace("'", ".")):
        LibvirtDriver.from_flags("m", tmp_path, parse("--libvirt-image", str(image), *flags))


def test_missing_image_says_how_to_build_one(tmp_path, monkeypatch):
    monkeypatch.delenv("FLOCK_LIBVIRT_IMAGE", raising=False)
    d = LibvirtDriver.from_flags("m", tmp_path, parse("--libvirt-uri", TEST_URI))
    with pytest.raises(MachineError, match="needs an image.*deploy/vm-image/build.sh"):
        d.pre_create_check()
    d = LibvirtDriver.from_flags("m", tmp_path, parse("--libvirt-uri", TEST_URI,
                                                      "--libvirt-image", "/no/such.qcow2"))
    with pytest.raises(MachineError, match="/no/such.qcow2: no such file"):
        d.pre_create_check()


def test_image_without_its_kernel_is_refused(tmp_path, image):
    image.with_suffix(".vmlinuz").unlink()
    d = new_driver(tmp_path, image)
    with pytest.raises(MachineError, match=r"kernel flock-vm.vmlinuz is missing next to it"):
        d.pre_create_check()


def test_overlay_image_is_refused(tmp_path, image):
    overlay = image.with_name("over.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b",
                    str(image), str(overlay)], check=True)
    for ext in (".vmlinuz", ".initrd"):
        overlay.with_suffix(ext).write_bytes(b"x")
    with pytest.raises(MachineError, match="itself an overlay.*qemu-img convert"):
        storage.ImageFiles.find(str(overlay))


def test_bad_uri_names_the_uri_and_what_to_check(tmp_path, image):
    d = new_driver(tmp_path, image, "--libvirt-uri", "nosuchdriver:///nowhere")
    with pytest.raises(DriverError, match="cannot connect to libvirt at --libvirt-uri "
                                          "nosuchdriver:///nowhere"):
        d.pre_create_check()


def test_unknown_network_lists_the_known_ones(tmp_path, image):
    d = new_driver(tmp_path, image, "--libvirt-network", "nonet")
    with pytest.raises(MachineError, match="--libvirt-network nonet: no such libvirt network"
                                           ".*use one of default"):
        d.pre_create_check()


QEMU_GUESTS = [("i686", ["qemu", "kvm"]), ("x86_64", ["qemu", "kvm"])]


def test_domain_type_is_qemu_unless_kvm_is_proven():
    def check_says(answer: bool):
        calls: list[int] = []

        def check() -> bool:
            calls.append(1)
            return answer
        return check, calls

    hangs, asked = check_says(False)
    assert conn_mod.pick_type("x86_64", QEMU_GUESTS, "qemu", "u", hangs) == ("x86_64", "qemu")
    assert not asked                                    # no check unless auto
    assert conn_mod.pick_type("x86_64", QEMU_GUESTS, "auto", "u", hangs) == ("x86_64", "qemu")
    works, _ = check_says(True)
    assert conn_mod.pick_type("x86_64", QEMU_GUESTS, "auto", "u", works) == ("x86_64", "kvm")
    assert conn_mod.pick_type("x86_64", QEMU_GUESTS, "kvm", "u", hangs) == ("x86_64", "kvm")
    assert conn_mod.pick_type("x86_64", [("x86_64", ["qemu"])], "auto", "u", works) == \
        ("x86_64", "qemu")
    assert conn_mod.pick_type("i686", [("i686", ["test"])], "qemu", "u", works) == \
        ("i686", "test")


def test_domain_type_must_be_offered():
    with pytest.raises(MachineError, match="--libvirt-domain-type kvm: libvirt at "
                                           "qemu:///system offers qemu for x86_64"):
        conn_mod.pick_type("x86_64", [("x86_64", ["qemu"])], "kvm", "qemu:///system",
                           lambda: True)


def test_capabilities_are_read_for_hvm_guests(conn):
    host_arch, guests = lx.guest_types(conn.getCapabilities())
    assert host_arch and ("i686", ["test"]) in guests
    assert conn_mod.choose_guest(conn, TEST_URI, "qemu") == ("i686", "test")


def test_taken_domain_name_is_refused_before_anything_is_made(tmp_path, image, conn):
    name = unique("taken")
    spec = lx.DomainSpec(name=name, domain_type="test", arch="i686", memory_mib=128, cpus=1,
                         disk="/x", disk_format="raw", network="default", kernel="/k",
                         initrd="/i", cmdline="")
    other = conn.defineXML(lx.domain_xml(spec))
    try:
        d = new_driver(tmp_path, image, name=name)
        with pytest.raises(MachineError, match=f"a libvirt domain named {name} already exists"):
            d.pre_create_check()
    finally:
        other.undefine()


# --- lifecycle -------------------------------------------------------------------------
def test_create_defines_and_starts_the_vm_and_finds_its_ip(tmp_path, image, conn):
    pool = unique("pool")
    base = seed_base(conn, pool, image)
    d = new_driver(tmp_path, image, "--libvirt-pool", pool, "--libvirt-memory", "256",
                   "--libvirt-cpu-count", "2", "--libvirt-disk-size", "4")
    d.pre_create_check()
    steps: list[str] = []
    d.create(steps.append)
    try:
        assert any("Waiting for the VM's IP address" in s for s in steps)
        dom = conn.lookupByName(d.machine_name)
        assert dom.UUIDString() == d.uuid
        root = ET.fromstring(dom.XMLDesc(0))
        assert root.get("type") == "test"          # the only type this hypervisor offers
        assert root.findtext("vcpu") == "2"
        assert root.findtext("memory") == str(256 * 1024)
        pool_obj = conn.storagePoolLookupByName(pool)
        assert root.find("devices/disk/source").get("file") == \
            pool_obj.storageVolLookupByName(d.volume).path()
        assert root.findtext("os/kernel") == pool_obj.storageVolLookupByName(
            base["kernel"]).path()
        cmdline = root.findtext("os/cmdline")
        assert cmdline.startswith("root=/dev/vda rw console=ttyS0 ")
        key = (d.machine_dir / "id_rsa.pub").read_text().strip()
        assert f"flock.ssh_key={base64.b64encode(key.encode()).decode()}" in cmdline
        assert f"systemd.hostname={d.machine_name}" in cmdline
        assert volumes(conn, pool) == sorted([*base.values(), f"{d.machine_name}.qcow2"])
        assert d.state() is State.RUNNING
        ip = d.ip()
        assert ip.startswith("192.168.122.")
        details = d.ssh_details()
        assert (details.host, details.port, details.user) == (ip, 22, "root")
        assert details.key_path == str(d.machine_dir / "id_rsa")
    finally:
        d.remove()
    assert d.machine_name not in [x.name() for x in conn.listAllDomains(0)]
    assert volumes(conn, pool) == sorted(base.values())    # the base stays: a cache


def test_stop_start_kill_restart_and_state_mapping(tmp_path, image, conn):
    pool = unique("pool")
    seed_base(conn, pool, image)
    d = new_driver(tmp_path, image, "--libvirt-pool", pool)
    d.create(lambda _m: None)
    try:
        dom = conn.lookupByName(d.machine_name)
        d.stop()
        assert d.state() is State.STOPPED
        with pytest.raises(HostNotRunning):
            d.ip()
        d.stop()                                   # stopping a stopped VM is fine
        d.start()
        assert d.state() is State.RUNNING
        d.kill()
        assert d.state() is State.STOPPED
        d.restart()
        assert d.state() is State.RUNNING
        dom.suspend()
        assert d.state() is State.PAUSED
        d.start()                                  # a paused VM is resumed
        assert d.state() is State.RUNNING
        dom.suspend()
        d.stop()                                   # and can be stopped
        assert d.state() is State.STOPPED
        d.start()
        dom.managedSave(0)
        assert d.state() is State.SAVED
        dom.create()
        # A fresh driver from the stored record sees the same VM.
        again = LibvirtDriver.load(d.machine_name, d.machine_dir, d.to_dict(), {})
        assert again.state() is State.RUNNING and again.ip() == d.ip()
    finally:
        d.remove()
    assert d.state() is State.ERROR            # gone at libvirt
    d.remove()                                 # already gone: not an error
    with pytest.raises(DriverError, match="has no VM.*removed outside Flock"):
        d.start()


def test_failed_create_removes_what_it_made_and_nothing_else(tmp_path, image, conn):
    """A domain of the same name appears between the check and the create: the define
    fails, the new disk is deleted, the other domain is left alone."""
    pool = unique("pool")
    base = seed_base(conn, pool, image)
    d = new_driver(tmp_path, image, "--libvirt-pool", pool)
    d.pre_create_check()
    spec = lx.DomainSpec(name=d.machine_name, domain_type="test", arch="i686",
                         memory_mib=128, cpus=1, disk="/x", disk_format="raw",
                         network="default", kernel="/k", initrd="/i", cmdline="")
    other = conn.defineXML(lx.domain_xml(spec))
    try:
        with pytest.raises(DriverError, match="defining domain"):
            d.create(lambda _m: None)
        assert volumes(conn, pool) == sorted(base.values())
        assert (d.uuid, d.volume) == ("", "")
        assert d.state() is State.ERROR
        d.remove()
        assert conn.lookupByName(d.machine_name).UUIDString() == other.UUIDString()
    finally:
        other.undefine()


def test_failed_upload_is_reported_and_leaves_no_partial_volume(tmp_path, image, conn):
    """The test hypervisor cannot upload: the error says so, and the half-made base
    volume is deleted (a later create must not boot from it)."""
    pool = unique("pool")
    d = new_driver(tmp_path, image, "--libvirt-pool", pool)
    with pytest.raises(DriverError, match="cannot upload .*flock-vm.qcow2 into pool"):
        d.create(lambda _m: None)
    assert volumes(conn, pool) == []
    assert conn.listAllDomains(0) and d.machine_name not in \
        [x.name() for x in conn.listAllDomains(0)]


def test_incomplete_base_copy_is_replaced(tmp_path, image, conn):
    pool_name = unique("pool")
    pool = storage.ensure_pool(conn, pool_name, lambda _m: None)
    names = storage.ImageFiles.find(str(image)).base_names()
    pool.createXML(lx.volume_xml(names["disk"], 7, "raw"), 0)   # a cut-short copy
    steps: list[str] = []
    with pytest.raises(DriverError, match="cannot upload"):
        storage.ensure_base(conn, pool, storage.ImageFiles.find(str(image)), steps.append)
    assert any("Replacing the incomplete copy" in s for s in steps)
    assert names["disk"] not in volumes(conn, pool_name)


def test_missing_ssh_key_is_reported(tmp_path, image, conn):
    pool = unique("pool")
    seed_base(conn, pool, image)
    d = new_driver(tmp_path, image, "--libvirt-pool", pool)
    (d.machine_dir / "id_rsa.pub").unlink()
    with pytest.raises(MachineError, match="cannot read the machine's SSH public key"):
        d.create(lambda _m: None)


def test_cli_refuses_a_missing_image_with_exit_code_3(tmp_path):
    # a refused pre-create check exits 3, as Docker Machine's ErrDuringPreCreate does
    # (commands/commands.go)
    env = {"FLOCK_MACHINE_STORAGE_PATH": str(tmp_path / "store"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "flock", "machine", "create", "-d", "libvirt",
         "--libvirt-uri", TEST_URI, "--libvirt-image", str(tmp_path / "none.qcow2"), "vm1"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "none.qcow2: no such file" in proc.stdout + proc.stderr
    assert "deploy/vm-image/build.sh" in proc.stdout + proc.stderr


def test_cli_refuses_a_bad_uri_and_an_unknown_network_with_exit_code_3(tmp_path, image):
    env = {"FLOCK_MACHINE_STORAGE_PATH": str(tmp_path / "store"), "PATH": "/usr/bin:/bin"}

    def create(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flock", "machine", "create", "-d", "libvirt",
             "--libvirt-image", str(image), *flags, unique("vm")],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False)

    bad_uri = create("--libvirt-uri", "nosuchdriver:///nowhere")
    assert bad_uri.returncode == 3   # the pre-create check's (commands/commands.go)
    assert "cannot connect to libvirt at --libvirt-uri nosuchdriver:///nowhere" in \
        bad_uri.stdout + bad_uri.stderr
    no_net = create("--libvirt-uri", TEST_URI, "--libvirt-network", "nonet")
    assert no_net.returncode == 3
    assert "--libvirt-network nonet: no such libvirt network" in no_net.stdout + no_net.stderr
    listed = subprocess.run([sys.executable, "-m", "flock", "machine", "ls", "-q"],
                            capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert listed.stdout.split() == []      # refused before anything was made
