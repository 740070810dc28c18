"""`flock machine create -d libvirt` booting a real VM with qemu:///system and joining it
to a real cluster.

The VM image is built by deploy/vm-image/build.sh (cached by the script's hash). The test
makes a private libvirt network (random name, a free /24, DHCP) and its own storage pool;
a real etcd and a real manager listen on the network's bridge address, which the VM
reaches. The machine is created with the exec runtime and --swarm: the VM boots under
QEMU emulation (domain type qemu), SSH answers with the injected key, provisioning
installs Flock there, and the node joins the manager; a container run through the manager
lands on it. Then stop/start with a new address (the certs follow it), `rm -y`, and a VM that never
gets an address (a network without DHCP): an error naming the step, nothing left at
libvirt. Nothing of the run is left behind: domains, volumes, network, pool.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from flock.busybox import busybox_rootfs_tar
from flock.certs import issue, load_ca, write_identity
from flock.provisioner import machine_certs
from flock.provisioner.store import Store
from tests.support import libvirt as lv
from tests.support.etcd import Etcd, have_etcd
from tests.support.procs import REPO, Proc, free_port, wait_for

# Booting and provisioning a VM under emulation takes minutes: the module's budget.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

NAME = f"lv-{uuid.uuid4().hex[:6]}"


@dataclasses.dataclass
class World:
    root: Path
    image: Path
    net: lv.PrivateNetwork
    pool: lv.TestPool
    store: Path
    manager_port: int
    discovery: str
    created: subprocess.CompletedProcess | None = None
    create_seconds: float = 0.0

    def flock(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """`flock machine ...` as a user runs it; its output also goes to flock.log here,
        which shows how far a long create got."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("DOCKER_HOST", "FLOCK_LIBVIRT_IMAGE")}
        log = self.root / "flock.log"
        with open(log, "a") as out:
            out.write(f"\n$ flock machine {' '.join(args)}\n")
            out.flush()
            start = out.tell()
            proc = subprocess.Popen(
                [sys.executable, "-m", "flock", "machine", *args], cwd=REPO, text=True,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                env={**env, "PYTHONPATH": str(REPO),
                     "FLOCK_MACHINE_STORAGE_PATH": str(self.store)})
            try:
                _, err = proc.communicate(timeout=timeout)
            except BaseException:
                proc.terminate()       # SIGTERM: the create cleans up what it made
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise
        with open(log) as f:
            f.seek(start)
            stdout = f.read()
        with open(log, "a") as out:
            out.write(err)
        return subprocess.CompletedProcess(args, proc.returncode, stdout, err)

    def create_args(self, name: str, network: str, *extra: str) -> list[str]:
        return ["create", "-d", "libvirt", "--libvirt-image", str(self.image),
                "--libvirt-network", network, "--libvirt-pool", self.pool.name,
                "--libvirt-memory", "1024", "--libvirt-disk-size", "3", *extra, name]

    @property
    def manager_url(self) -> str:
        return f"tcp://{self.net.host_ip}:{self.manager_port}"

    def docker(self, *args: str, input: bytes | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
        certs = self.store / "certs"
        done = subprocess.run(
            ["docker", "--tlsverify", f"--tlscacert={certs / 'ca.pem'}",
             f"--tlscert={certs / 'cert.pem'}", f"--tlskey={certs / 'key.pem'}",
             "-H", self.manager_url, *args], input=input, capture_output=True, timeout=300)
        if check:
            assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
        return done

    def info(self) -> dict | None:
        """The manager's /info, or None while it does not answer."""
        ctx = ssl.create_default_context(cafile=str(self.store / "certs" / "ca.pem"))
        ctx.load_cert_chain(str(self.store / "certs" / "cert.pem"),
                            str(self.store / "certs" / "key.pem"))
        conn = http.client.HTTPSConnection(self.net.host_ip, self.manager_port, context=ctx,
                                           timeout=10)
        try:
            conn.request("GET", "/info")
            return json.loads(conn.getresponse().read())
        except (OSError, ValueError):
            return None
        finally:
            conn.close()

    def nodes(self) -> dict[str, str]:
        """Node name -> its Status in the manager's SystemStatus."""
        status = (self.info() or {}).get("SystemStatus") or []
        out: dict[str, str] = {}
        name = None
        for key, value in status:
            if key.startswith(" ") and not key.startswith("  "):
                name = key.strip()
            elif name is not None and key.strip() == "└ Status":
                out[name] = value
        return out

    def healthy(self, name: str = NAME) -> bool:
        return self.nodes().get(name) == "Healthy"


def _warm_wheelhouse(store_cache: Path) -> None:
    """What `create` would prepare anyway; a failure here shows there, with its step."""
    from flock.provisioner.bundle import PythonTarget, wheelhouse

    with contextlib.suppress(Exception):
        wheelhouse(store_cache, PythonTarget((3, 11), "x86_64", (2, 36), "/usr/bin/python3"))


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stderr}\n{result.stdout}"
    return result.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    usable, why = lv.have_libvirt()
    if os.geteuid() != 0 or not usable or not have_etcd() or not shutil.which("docker"):
        pytest.fail(why or "needs root, etcd and the docker CLI (see scripts/test.sh)")
    lv.ensure_daemons()
    root = tmp_path_factory.mktemp("libvirt-e2e")
    # The store's cache (the wheelhouse provisioning uploads: Flock's wheel and its
    # dependencies' wheels, fetched from PyPI) outlives the run, as a user's does. On a
    # fresh machine it is filled while the image builds (both take minutes; the create
    # then finds it ready), for the Python of the image (Debian 12: 3.11, glibc 2.36).
    cache = Path(os.environ.get("FLOCK_BUILD_CACHE") or "/var/tmp/flock-build-cache")
    store_cache = cache / "machine-store-cache"
    store_cache.mkdir(parents=True, exist_ok=True)
    warm = threading.Thread(target=_warm_wheelhouse, args=(store_cache,), daemon=True)
    warm.start()
    image = lv.build_image(root / "image")
    warm.join()
    net = lv.PrivateNetwork(label="e2e").start()
    pool = lv.TestPool()
    etcd = manager = None
    try:
        etcd = Etcd(root / "etcd", ip=net.host_ip).start()
        discovery = f"etcd://{etcd.endpoint}/flock-{uuid.uuid4().hex[:6]}"
        store = root / "store"
        store.mkdir()
        (store / "cache").symlink_to(store_cache)
        machine_certs.ensure_ca_and_client(Store(store))
        ca = load_ca(str(store / "certs" / "ca.pem"), str(store / "certs" / "ca-key.pem"))
        files = write_identity(root / "manager-certs",
                               issue(ca, "test-manager", ips=[net.host_ip], server=True,
                                     role="manager"), ca.cert)
        port = free_port()
        manager = Proc("manager", ["manage", "-H", f"tcp://{net.host_ip}:{port}",
                                   "--heartbeat", "2s", "--tlsverify", "--tlscacert",
                                   files.ca, "--tlscert", files.cert, "--tlskey", files.key,
                                   discovery], root).start()
        w = World(root, image, net, pool, store, port, discovery)
        wait_for(lambda: w.info() is not None, 30, "the manager")
        started = time.monotonic()
        w.created = w.flock(*w.create_args(
            NAME, net.name, "--engine-runtime", "exec", "--engine-label", "zone=vm",
            "--swarm", "--swarm-discovery", discovery, "--install-dir", "/opt/flock",
            "--ssh-timeout", "300", "--provision-timeout", "900"), timeout=1500)
        w.create_seconds = time.monotonic() - started
        yield w
    finally:
        if (root / "store").exists():
            subprocess.run([sys.executable, "-m", "flock", "machine", "-s", str(root / "store"),
                            "rm", "-y", "-f", NAME], cwd=REPO, capture_output=True,
                           timeout=300, check=False)
        lv.remove_domain(NAME)        # whatever a killed create left
        for proc in (manager, etcd):
            if proc is not None:
                proc.stop()
        net.stop()
        pool.cleanup()
    assert not lv.leftovers(NAME, net.name, pool.name)


@pytest.fixture
def machine(world):
    if world.created is None or world.created.returncode != 0:
        pytest.fail("creating the machine failed:\n"
                    f"{world.created.stderr if world.created else ''}\n"
                    f"{world.created.stdout if world.created else ''}")
    return world


def test_create_boots_the_vm_provisions_it_and_the_node_joins(world):
    out = ok(world.created)
    print(f"create took {world.create_seconds:.0f} s")
    for step in ("Starting the VM (qemu", "Waiting for the VM's IP address",
                 "Waiting for SSH", "Installing Flock", "Starting the agent"):
        assert step in out, out
    ip = ok(world.flock("ip", NAME)).strip()
    assert ip.startswith(str(world.net.subnet.network_address)[:-1])
    wait_for(world.healthy, 180, f"{NAME} healthy in the manager ({world.nodes()})", step=2)
    listing = ok(world.flock("ls"))
    row = next(line.split() for line in listing.splitlines() if line.startswith(NAME + " "))
    assert row[1:4] == ["-", "libvirt", "Running"], listing
    # The VM is what the driver says it is: qemu (TCG), its disk in the test's pool.
    dumped = subprocess.run(["virsh", "-c", lv.URI, "dumpxml", NAME], capture_output=True,
                            text=True, check=True).stdout
    assert "<domain type='qemu'" in dumped
    assert f"/var/lib/libvirt/images/{world.pool.name}/{NAME}.qcow2" in dumped, dumped
    assert f"{NAME}.qcow2" in world.pool.volumes()


def test_ssh_reaches_the_vm_with_the_machines_key(machine):
    done = machine.flock("ssh", NAME, "--", "cat /proc/cmdline; hostname; "
                         "test -d /sys/fs/cgroup/memory && echo cgroup-v1")
    out = ok(done)
    assert "systemd.unified_cgroup_hierarchy=0" in out
    assert NAME in out.split() and "cgroup-v1" in out


def test_a_container_run_through_the_manager_lands_on_the_vm(machine):
    machine.docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest",
                   input=busybox_rootfs_tar())
    name = f"on-vm-{uuid.uuid4().hex[:6]}"
    machine.docker("run", "-d", "--name", name, "-e", "constraint:zone==vm", "busybox",
                   "sleep", "600")
    try:
        node = machine.docker("inspect", "-f", "{{.Node.Name}}", name).stdout.decode().strip()
        assert node == NAME
        seen = ok(machine.flock("ssh", NAME, "--", "ps -eo args"))
        assert "sleep 600" in seen
    finally:
        machine.docker("rm", "-f", name, check=False)


def test_stop_and_start_follow_the_vm_and_its_new_ip(machine):
    """Stopped, the VM is given another address by the network (a DHCP reservation):
    `start` finds it, the server cert is made again for it, the node comes back."""
    old_ip = ok(machine.flock("ip", NAME)).strip()
    ok(machine.flock("stop", NAME, timeout=300))
    assert ok(machine.flock("status", NAME)).strip() == "Stopped"
    assert lv.domain_names().count(NAME) == 1          # stopped, still defined
    new_ip = str(machine.net.subnet.network_address + 250)
    assert new_ip != old_ip
    machine.net.reserve(lv.domain_mac(NAME), new_ip)
    started = ok(machine.flock("start", NAME, timeout=900))
    assert f'Machine "{NAME}" was started.' in started
    assert f"now has the IP {new_ip}" in started, started
    assert ok(machine.flock("status", NAME)).strip() == "Running"
    assert ok(machine.flock("ip", NAME)).strip() == new_ip
    config = json.loads((machine.store / "machines" / NAME / "config.json").read_text())
    assert config["HostOptions"]["AuthOptions"]["ServerIPs"] == [new_ip]
    wait_for(machine.healthy, 300, f"{NAME} healthy at its new IP ({machine.nodes()})",
             step=2)


def test_rm_leaves_nothing_behind(machine):
    base = [v for v in machine.pool.volumes() if v.startswith("flock-vm-")]
    removed = ok(machine.flock("rm", "-y", NAME, timeout=300))
    assert f"Successfully removed {NAME}" in removed
    assert NAME not in lv.domain_names()
    # The machine's disk is gone; the image's base volumes stay as the pool's cache.
    assert machine.pool.volumes() == base
    assert NAME not in ok(machine.flock("ls", "-q")).split()
    assert not Path(f"/var/log/libvirt/qemu/{NAME}-console.log").exists()


def test_a_vm_that_never_gets_an_ip_fails_naming_the_step_and_cleans_up(world):
    """A network without DHCP: the VM boots but never gets an address."""
    dark = lv.PrivateNetwork(dhcp=False, label="nod").start()
    name = f"lv-noip-{uuid.uuid4().hex[:4]}"
    try:
        before = world.pool.volumes()
        started = time.monotonic()
        done = world.flock(*world.create_args(name, dark.name, "--libvirt-ip-timeout", "20"),
                           timeout=300)
        text = done.stdout + done.stderr
        assert done.returncode == 1, text
        assert "Waiting for the VM's IP address" in text and "no IP address after 20 s" in text
        assert time.monotonic() - started < 120
        assert name not in lv.domain_names()
        assert world.pool.volumes() == before
        listing = ok(world.flock("ls"))
        row = next(line for line in listing.splitlines() if line.startswith(name + " "))
        assert "Error" in row and "Waiting for the VM's IP address" in row
        ok(world.flock("rm", "-y", name))
        assert name not in ok(world.flock("ls", "-q")).split()
    finally:
        world.flock("rm", "-y", "-f", name)
        dark.stop()
    assert not lv.leftovers(name, dark.name)


def test_bad_network_and_missing_image_fail_before_anything_is_made(world, tmp_path):
    done = world.flock(*world.create_args("lv-badnet", "no-such-net"))
    assert done.returncode == 3   # refused by the pre-create check (commands/commands.go)
    assert "--libvirt-network no-such-net: no such libvirt network" in done.stderr
    done = world.flock("create", "-d", "libvirt", "--libvirt-image",
                       str(tmp_path / "nope.qcow2"), "lv-noimg")
    assert done.returncode == 3 and "nope.qcow2: no such file" in done.stderr
    assert not {"lv-badnet", "lv-noimg"} & set(ok(world.flock("ls", "-q")).split())
    assert not {"lv-badnet", "lv-noimg"} & set(lv.domain_names())
