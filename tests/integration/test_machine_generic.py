"""`flock machine create -d generic` provisioning a real host for real.

The host is a network namespace with its own sshd (tests/support/netns.py). A real etcd
and a real manager run on this side, listening where the namespace reaches them; the
machine is created with --swarm, so provisioning installs Flock there from the wheelhouse,
starts the distribution's dockerd and `flock join` INSIDE the namespace, and the node
joins the manager. Then: `docker run` through the manager lands on the machine's engine,
`ssh` and `scp` work both ways, restart and re-provisioning keep the containers, and bad
input (nothing listening, a key the host refuses, missing flags) fails clearly with a
record `rm` cleans up.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from flock.busybox import busybox_rootfs_tar
from flock.certs import issue, load_ca, write_identity
from flock.provisioner import machine_certs
from flock.provisioner.store import Store
from tests.support.etcd import Etcd, have_etcd
from tests.support.machine_cli import flock_machine, ok, require_created
from tests.support.netns import NetnsHost
from tests.support.procs import REPO, Proc, cmdline, free_port, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.docker]

NAME = "gen1"
INSECURE = "registry.flock.test:5000"
MIRROR = "http://mirror.flock.test:5000"


@dataclasses.dataclass
class World:
    root: Path
    ns: NetnsHost
    etcd: Etcd
    store: Path
    key: Path
    install_dir: str
    manager: Proc
    manager_port: int
    discovery: str
    created: subprocess.CompletedProcess | None = None

    def flock(self, *args: str, input: bytes | str = "",
              timeout: float = 120) -> subprocess.CompletedProcess:
        """`flock machine -s STORE ...` as a user runs it."""
        return flock_machine("-s", str(self.store), *args, input=input, timeout=timeout)

    def tls(self) -> list[str]:
        certs = self.store / "certs"
        return ["--tlsverify", f"--tlscacert={certs / 'ca.pem'}",
                f"--tlscert={certs / 'cert.pem'}", f"--tlskey={certs / 'key.pem'}"]

    def docker(self, host: str, *args: str, input: bytes | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["docker", *self.tls(), "-H", host, *args], input=input,
                              capture_output=True, timeout=180)
        if check:
            assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
        return done

    @property
    def manager_url(self) -> str:
        return f"tcp://127.0.0.1:{self.manager_port}"

    @property
    def engine_url(self) -> str:
        return f"tcp://{self.ns.ip}:2376"

    def manager_info(self) -> dict:
        ctx = ssl.create_default_context(cafile=str(self.store / "certs" / "ca.pem"))
        ctx.load_cert_chain(str(self.store / "certs" / "cert.pem"),
                            str(self.store / "certs" / "key.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.manager_port, context=ctx,
                                           timeout=10)
        try:
            conn.request("GET", "/info")
            return json.loads(conn.getresponse().read())
        except (OSError, ValueError):
            return {}
        finally:
            conn.close()

    def nodes(self) -> dict[str, dict[str, str]]:
        """Node name -> its rows (Status, Labels...) in the manager's SystemStatus."""
        out: dict[str, dict[str, str]] = {}
        name = None
        for key, value in self.manager_info().get("SystemStatus") or []:
            if key.startswith(" ") and not key.startswith("  "):
                name = key.strip()
                out[name] = {}
            elif name is not None and key.strip().startswith("└ "):
                out[name][key.strip()[2:]] = value
        return out

    def healthy(self) -> bool:
        return self.nodes().get(NAME, {}).get("Status") == "Healthy"

    def pid(self, service: str) -> int:
        return int(Path(self.install_dir, "run", f"{service}.pid").read_text())


def _need_tools() -> None:
    missing = [t for t in ("ip", "etcd", "dockerd", "docker", "busybox")
               if shutil.which(t) is None]
    if os.geteuid() != 0 or missing or not os.path.exists("/usr/sbin/sshd") or not have_etcd():
        pytest.fail(f"needs root, openssh-server and {', '.join(missing) or 'the tools'} "
                    "(see scripts/test.sh)")


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    _need_tools()
    root = tmp_path_factory.mktemp("generic")
    ns = NetnsHost(root / "ns", label="gen").start()
    # A short install dir: dockerd's sockets under it must fit in 108 bytes.
    install_dir = tempfile.mkdtemp(prefix="flk", dir="/tmp")
    etcd = manager = None
    try:
        key = _keygen(root / "id_test")
        ns.authorize(key.with_suffix(".pub").read_text())
        etcd = Etcd(root / "etcd", ip=ns.host_ip).start()
        discovery = f"etcd://{etcd.endpoint}/flock-{uuid.uuid4().hex[:6]}"
        store = root / "store"
        machine_certs.ensure_ca_and_client(Store(store))
        ca = load_ca(str(store / "certs" / "ca.pem"), str(store / "certs" / "ca-key.pem"))
        files = write_identity(root / "manager-certs",
                               issue(ca, "test-manager", ips=["127.0.0.1"], server=True,
                                     role="manager"), ca.cert)
        port = free_port()
        manager = Proc("manager", ["manage", "-H", f"tcp://127.0.0.1:{port}", "--heartbeat",
                                   "1s", "--tlsverify", "--tlscacert", files.ca, "--tlscert",
                                   files.cert, "--tlskey", files.key, discovery], root).start()
        w = World(root, ns, etcd, store, key, install_dir, manager, port, discovery)
        wait_for(lambda: w.manager_info() != {}, 30, "the manager")
        w.created = w.flock(
            "create", "-d", "generic", "--generic-ip-address", ns.ip, "--generic-ssh-key",
            str(key), "--install-dir", install_dir, "--swarm", "--swarm-discovery", discovery,
            "--engine-label", "zone=ns", "--engine-opt", "iptables=false",
            "--engine-opt", "ip-masq=false",
            "--engine-opt", f"containerd-namespace=flk{ns.name}",
            # Docker Machine's engine and swarm flags (see test_docker_machines_flags_...)
            "--engine-storage-driver", "vfs", "--engine-insecure-registry", INSECURE,
            "--engine-registry-mirror", MIRROR, "--swarm-join-opt", "heartbeat=3s",
            "--ssh-timeout", "30", "--provision-timeout", "600", NAME, timeout=900)
        yield w
        w.flock("rm", "-y", NAME, timeout=120)
    finally:
        for proc in (manager, etcd):
            if proc is not None:
                proc.stop()
        ns.stop()
        for sub in ("docker", "run/docker"):
            subprocess.run(["umount", "-R", "-l", f"{install_dir}/{sub}"], capture_output=True)
        shutil.rmtree(install_dir, ignore_errors=True)


@pytest.fixture
def machine(world):
    return require_created(world)


# --- provisioning for real --------------------------------------------------------------------
def test_create_provisions_the_host_and_its_node_joins_the_manager(world):
    out = ok(world.created)
    for step in (f"Waiting for SSH (root@{world.ns.ip}:22)", "Installing Python",
                 "Installing Flock", "Writing certificates and configuration",
                 "Starting the engine", "Starting the agent", "Docker is up and running!"):
        assert step in out, out
    # The engine and the agent run inside the namespace, under the install dir.
    inside = world.ns.pids()
    argvs = {pid: cmdline(pid) for pid in inside}
    commands = {pid: b" ".join(argv).decode() for pid, argv in argvs.items() if argv is not None}
    assert any(c.startswith("/usr/sbin/dockerd --data-root " + world.install_dir)
               for c in commands.values()), commands
    assert any(f"{world.install_dir}/venv/bin/flock join --advertise {world.ns.ip}:4000" in c
               for c in commands.values()), commands
    wait_for(world.healthy, 60, f"{NAME} healthy in the manager ({world.nodes()})")
    assert "zone=ns" in world.nodes()[NAME]["Labels"]
    listing = ok(world.flock("ls"))
    row = next(line.split() for line in listing.splitlines() if line.startswith(NAME + " "))
    assert row[1:5] == ["-", "generic", "Running", world.engine_url], listing


def test_docker_run_through_the_manager_lands_on_the_machines_engine(machine):
    machine.docker(machine.manager_url, "import", "-c", 'CMD ["sh"]', "-", "busybox:latest",
                   input=busybox_rootfs_tar())
    name = f"via-manager-{uuid.uuid4().hex[:6]}"
    machine.docker(machine.manager_url, "run", "-d", "--name", name, "-e",
                   "constraint:zone==ns", "busybox", "sleep", "300")
    try:
        # The machine's own engine, over TLS with the flags `flock machine config` gives.
        flags = ok(machine.flock("config", NAME)).split()
        assert f"-H={machine.engine_url}" in flags
        names = subprocess.run(["docker", *flags, "ps", "--format", "{{.Names}}"],
                               capture_output=True, text=True, timeout=60)
        assert name in names.stdout.split(), names.stderr
    finally:
        machine.docker(machine.manager_url, "rm", "-f", name, check=False)


def test_docker_machines_engine_and_join_flags_reach_the_engine_and_the_agent(machine):
    # commands/create.go --engine-storage-driver, --engine-insecure-registry,
    # --engine-registry-mirror (the engine's own settings: here in its daemon.json) and
    # --swarm-join-opt (flags of the agent's join command)
    info = json.loads(machine.docker(machine.engine_url, "info", "--format",
                                     "{{json .}}").stdout)
    assert info["Driver"] == "vfs"
    assert info["RegistryConfig"]["IndexConfigs"][INSECURE]["Secure"] is False
    assert info["RegistryConfig"]["Mirrors"] == [MIRROR + "/"]
    commands = [argv for argv in map(cmdline, machine.ns.pids()) if argv is not None]
    join = [c for c in commands if b"join" in c and any(a.endswith(b"/flock") for a in c)]
    assert join and all(b"--heartbeat=3s" in c for c in join), commands


def test_mount_a_folder_of_the_machine_here_and_unmount_it(machine, tmp_path):
    # commands/mount.go: `mount NAME:PATH MOUNTPOINT` runs sshfs, `mount -u` fusermount -u
    there = f"/tmp/flock-mount-{uuid.uuid4().hex[:8]}"
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    ok(machine.flock("ssh", NAME, "--", f"mkdir -p {there} && echo from-there > {there}/a"))
    try:
        ok(machine.flock("mount", f"{NAME}:{there}", str(mnt)))
        found = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", str(mnt)],
                               capture_output=True, text=True).stdout.split()
        assert found == ["fuse.sshfs", f"root@{machine.ns.ip}:{there}"], found
        assert (mnt / "a").read_text() == "from-there\n"
        (mnt / "b").write_text("from-here\n")
        assert ok(machine.flock("ssh", NAME, "--", "cat", f"{there}/b")) == "from-here\n"
        ok(machine.flock("mount", "-u", f"{NAME}:{there}", str(mnt)))
        assert subprocess.run(["findmnt", str(mnt)], capture_output=True).returncode == 1
        assert not (mnt / "a").exists()
    finally:
        subprocess.run(["fusermount", "-u", "-z", str(mnt)], capture_output=True)
        machine.flock("ssh", NAME, "--", "rm", "-rf", there)
    bad = machine.flock("mount", "nosuch:/tmp", str(mnt))
    assert bad.returncode == 1 and 'Docker machine "nosuch" does not exist' in bad.stderr
    bad = machine.flock("mount")
    assert (bad.returncode, bad.stderr) == (1, "Improper number of arguments\n")


def test_ssh_runs_commands_there_with_their_exit_codes(machine):
    done = machine.flock("ssh", NAME, "--", "echo", "hi")
    assert (done.returncode, done.stdout) == (0, "hi\n"), done.stderr
    assert machine.flock("ssh", NAME, "--", "exit 7").returncode == 7
    addresses = ok(machine.flock("ssh", NAME, "--", "ip", "-o", "-4", "addr"))
    assert machine.ns.ip in addresses and machine.ns.host_ip not in addresses
    assert ok(machine.flock("ssh", NAME, "wc", "-c", input="abc")).strip() == "3"
    piped = machine.flock("ssh", NAME, input="echo piped to $0\nexit 5\n")   # no command
    assert piped.returncode == 5 and "piped to" in piped.stdout, piped.stderr
    missing = machine.flock("ssh", "nosuch", "--", "true")
    assert missing.returncode == 1 and 'Docker machine "nosuch" does not exist' in missing.stderr


def test_ssh_on_a_terminal_opens_a_login_shell_with_a_pty(machine):
    import select

    env = {k: v for k, v in os.environ.items() if k != "FLOCK_MACHINE_STORAGE_PATH"}
    leader, follower = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flock", "machine", "-s", str(machine.store), "ssh", NAME],
        cwd=REPO, stdin=follower, stdout=follower, stderr=follower, start_new_session=True,
        env={**env, "PYTHONPATH": str(REPO), "TERM": "xterm"})
    os.close(follower)
    os.write(leader, b"tty; echo answer=$((6*7)); exit 3\n")
    output = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:   # EIO: the other side closed
                    break
                if not chunk:
                    break
                output += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    text = output.decode(errors="replace")
    assert code == 3, text
    assert "answer=42" in text and "/dev/pts/" in text, text


def test_scp_copies_both_ways_and_folders_with_r(machine, tmp_path):
    there = f"/tmp/flock-scp-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "file.txt"
    local.write_text("from here\n")
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "leaf").write_text("leaf\n")
    try:
        ok(machine.flock("scp", str(local), f"{NAME}:{there}-file"))
        assert ok(machine.flock("ssh", NAME, "--", "cat", f"{there}-file")) == "from here\n"
        ok(machine.flock("scp", f"{NAME}:{there}-file", str(tmp_path / "back.txt")))
        assert (tmp_path / "back.txt").read_text() == "from here\n"
        refused = machine.flock("scp", str(tree), f"{NAME}:{there}-tree")
        assert refused.returncode == 1 and "is a directory (use -r" in refused.stderr
        ok(machine.flock("scp", "-r", str(tree), f"{NAME}:{there}-tree"))
        ok(machine.flock("scp", "-r", f"{NAME}:{there}-tree", str(tmp_path / "tree-back")))
        assert (tmp_path / "tree-back" / "sub" / "leaf").read_text() == "leaf\n"
        # Machine to machine (here: the machine to itself, through a folder here).
        ok(machine.flock("scp", f"{NAME}:{there}-file", f"{NAME}:{there}-copy"))
        assert ok(machine.flock("ssh", NAME, "--", "cat", f"{there}-copy")) == "from here\n"
        missing = machine.flock("scp", f"{NAME}:{there}-nothing", str(tmp_path / "x"))
        assert missing.returncode == 1 and "no such file or directory" in missing.stderr
    finally:
        machine.flock("ssh", NAME, "--", "rm", "-rf", f"{there}-file", f"{there}-tree",
                      f"{there}-copy")


def test_restart_restarts_flocks_services_and_keeps_the_containers(machine):
    machine.docker(machine.engine_url, "import", "-c", 'CMD ["sh"]', "-", "busybox:latest",
                   input=busybox_rootfs_tar())
    keeper = machine.docker(machine.engine_url, "run", "-d", "busybox", "sleep", "600") \
        .stdout.decode().strip()
    try:
        before = (machine.pid("engine"), machine.pid("agent"))
        ok(machine.flock("restart", NAME, timeout=180))
        assert (machine.pid("engine"), machine.pid("agent")) != before
        wait_for(lambda: machine.docker(machine.engine_url, "version", check=False)
                 .returncode == 0, 60, "the engine after the restart")
        running = machine.docker(machine.engine_url, "inspect", "-f", "{{.State.Running}}",
                                 keeper).stdout.decode().strip()
        assert running == "true"   # --live-restore
        wait_for(machine.healthy, 60, f"{NAME} healthy again ({machine.nodes()})")
        refused = machine.flock("stop", NAME)
        assert refused.returncode == 1
        assert f"{machine.install_dir}/bin/flock-services stop" in refused.stderr
    finally:
        machine.docker(machine.engine_url, "rm", "-f", keeper, check=False)


def test_provision_again_reinstalls_and_restarts_everything(machine):
    agent_before = machine.pid("agent")
    out = ok(machine.flock("provision", NAME, timeout=600))
    assert "Stopping Flock's services" in out and "Starting the agent" in out
    assert machine.pid("agent") != agent_before
    wait_for(machine.healthy, 60, f"{NAME} healthy after provisioning again")
    status = ok(machine.flock("ssh", NAME, "--", f"{machine.install_dir}/bin/flock-services",
                              "status"))
    assert "engine: running" in status and "agent: running" in status


def test_upgrade_reinstalls_flock_and_restarts_the_agent_but_not_the_engine(machine):
    engine, agent = machine.pid("engine"), machine.pid("agent")
    out = ok(machine.flock("upgrade", NAME, timeout=600))
    assert "Installing Flock" in out and "Starting the agent" in out
    assert machine.pid("engine") == engine and machine.pid("agent") != agent
    wait_for(machine.healthy, 60, f"{NAME} healthy after the upgrade")


def test_regenerate_certs_installs_a_new_server_cert_the_engine_serves(machine):
    def served_serial() -> int:
        certs = machine.store / "certs"
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
        with socket.create_connection((machine.ns.ip, 2376), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=machine.ns.ip) as tls:
            from cryptography import x509
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)) \
                .serial_number

    before = served_serial()
    ok(machine.flock("regenerate-certs", "-f", NAME, timeout=300))
    wait_for(lambda: machine.docker(machine.engine_url, "version", check=False)
             .returncode == 0, 60, "the engine with its new cert")
    assert served_serial() != before
    wait_for(machine.healthy, 60, f"{NAME} healthy with the new cert")


# --- bad input --------------------------------------------------------------------------------
def test_nothing_listening_fails_the_ssh_step_and_rm_cleans_up(world, tmp_path):
    name = "gen-closed"
    started = time.monotonic()
    done = world.flock("create", "-d", "generic", "--generic-ip-address", world.ns.ip,
                       "--generic-ssh-port", "2299", "--generic-ssh-key", str(world.key),
                       "--install-dir", str(tmp_path / "never"), "--ssh-timeout", "3", name)
    assert done.returncode == 1
    assert "Waiting for SSH" in done.stderr + done.stdout
    assert f"{world.ns.ip}:2299" in done.stderr + done.stdout
    assert time.monotonic() - started < 60
    listing = ok(world.flock("ls"))
    row = next(line for line in listing.splitlines() if line.startswith(name + " "))
    assert "Stopped" in row and "Waiting for SSH" in row
    removed = ok(world.flock("rm", "-y", name))
    assert f"Successfully removed {name}" in removed
    assert name not in ok(world.flock("ls", "-q")).split()


def test_a_key_the_host_refuses_fails_clearly(world, tmp_path):
    name = "gen-badkey"
    stranger = _keygen(tmp_path / "stranger")
    done = world.flock("create", "-d", "generic", "--generic-ip-address", world.ns.ip,
                       "--generic-ssh-key", str(stranger), "--install-dir",
                       str(tmp_path / "never"), "--ssh-timeout", "20", name)
    text = done.stderr + done.stdout
    assert done.returncode == 1
    assert "Waiting for SSH" in text and "refused the SSH key" in text and "ssh-copy-id" in text
    assert not (tmp_path / "never").exists()
    ok(world.flock("rm", "-y", name))


def test_an_engine_that_keeps_exiting_fails_its_step_early_with_its_log(world, tmp_path):
    ns = NetnsHost(tmp_path / "ns", label="bad").start()
    install_dir = tempfile.mkdtemp(prefix="flk", dir="/tmp")
    name = "gen-badengine"
    try:
        ns.authorize(world.key.with_suffix(".pub").read_text())
        started = time.monotonic()
        done = world.flock("create", "-d", "generic", "--generic-ip-address", ns.ip,
                           "--generic-ssh-key", str(world.key), "--install-dir", install_dir,
                           "--engine-opt", "no-such-flag=1", "--provision-timeout", "600",
                           name, timeout=900)
        text = done.stderr + done.stdout
        assert done.returncode == 1, text
        assert "Starting the engine: the engine exited" in text, text
        assert re.search(r"exited \d+ times since it was started", text), text
        assert "unknown flag: --no-such-flag" in text, text   # dockerd's own words
        assert time.monotonic() - started < 300   # not the whole --provision-timeout
        ok(world.flock("rm", "-y", name))
        assert not ns.port_open(2376)
    finally:
        ns.stop()
        shutil.rmtree(install_dir, ignore_errors=True)


def test_missing_or_wrong_generic_flags_are_refused_before_anything_is_made(world, tmp_path):
    done = world.flock("create", "-d", "generic", "gen-noip")
    assert done.returncode == 1 and "needs --generic-ip-address" in done.stderr
    done = world.flock("create", "-d", "generic", "--generic-ip-address", world.ns.ip,
                       "--generic-ssh-key", str(tmp_path / "missing"), "gen-nokey")
    # the driver's pre-create check refuses: Docker Machine's exit code 3 (commands.go)
    assert done.returncode == 3 and "no such file" in done.stderr
    assert "Error with pre-create check: " in done.stderr
    done = world.flock("create", "-d", "generic", "--generic-ip-address", world.ns.ip,
                       "--generic-ssh-port", "70000", "gen-port")
    assert done.returncode == 1 and "not a port" in done.stderr
    names = ok(world.flock("ls", "-q")).split()
    assert not {"gen-noip", "gen-nokey", "gen-port"} & set(names)


# --- a swarm master ---------------------------------------------------------------------------
MASTER = "gen-master"


@pytest.fixture(scope="module")
def master(world, tmp_path_factory):
    """A second namespace host made a --swarm-master with the exec runtime (no engine):
    its own manager, on a discovery prefix of its own in the same etcd."""
    ns = NetnsHost(tmp_path_factory.mktemp("ns-master"), label="mst").start()
    install_dir = tempfile.mkdtemp(prefix="flk", dir="/tmp")
    try:
        ns.authorize(world.key.with_suffix(".pub").read_text())
        ns.reach(world.ns.host_ip)   # where etcd listens
        discovery = f"etcd://{world.etcd.endpoint}/flock-master-{uuid.uuid4().hex[:6]}"
        created = world.flock(
            "create", "-d", "generic", "--generic-ip-address", ns.ip, "--generic-ssh-key",
            str(world.key), "--install-dir", install_dir, "--engine-runtime", "exec",
            "--swarm-master", "--swarm-discovery", discovery, "--swarm-strategy", "binpack",
            "--engine-label", "role=master", "--ssh-timeout", "30",
            "--provision-timeout", "600", MASTER, timeout=900)
        yield ns, created
        world.flock("rm", "-y", MASTER, timeout=120)
    finally:
        ns.stop()
        shutil.rmtree(install_dir, ignore_errors=True)


def test_a_swarm_master_runs_its_manager_which_docker_reaches(world, master):
    ns, created = master
    out = ok(created)
    assert "Starting the agent" in out and "Starting the manager" in out, out
    assert "Starting the engine" not in out   # the exec runtime has none
    flags = ok(world.flock("config", "--swarm", MASTER)).split()
    assert f"-H=tcp://{ns.ip}:3376" in flags

    def docker(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *flags, *args], input=input, capture_output=True,
                              timeout=180)

    def node_listed() -> bool:
        info = docker("info").stdout.decode()
        return f" {MASTER}:" in info or f" {MASTER}\n" in info or MASTER in info

    wait_for(node_listed, 60, f"{MASTER} in its own manager's docker info")
    info = docker("info").stdout.decode()
    assert "binpack" in info and "role=master" in info, info
    imported = docker("import", "-c", 'CMD ["sh"]', "-", "busybox:latest",
                      input=busybox_rootfs_tar())
    assert imported.returncode == 0, imported.stderr.decode()
    ran = docker("run", "--rm", "busybox", "echo", "hello from the master")
    assert ran.returncode == 0 and ran.stdout.decode() == "hello from the master\n", \
        ran.stderr.decode()
    listing = ok(world.flock("ls"))
    row = next(line for line in listing.splitlines() if line.startswith(MASTER + " "))
    assert f"{MASTER} (master)" in row, listing   # commands/ls.go


def test_rm_stops_flocks_services_on_the_host_and_forgets_the_machine(machine):
    out = ok(machine.flock("rm", "-y", NAME))
    assert f"Successfully removed {NAME}" in out
    assert not machine.ns.port_open(2376) and not machine.ns.port_open(4000)
    assert not Path(machine.install_dir, "run", "engine.pid").exists()
    assert Path(machine.install_dir, "docker").is_dir()   # the engine's data stays
    assert NAME not in ok(machine.flock("ls", "-q")).split()
