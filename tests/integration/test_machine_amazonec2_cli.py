"""`flock machine ... -d amazonec2` as a user runs it: the real CLI in a child process,
against a real local EC2 API (moto_server), with the test's own boto3 client checking
what exists at the provider after each command."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import ssl
import stat
import subprocess
import threading
import urllib.request

import pytest

from tests.support.machine_cli import flock_machine
from tests.support.moto import (
    ACCESS_KEY,
    NOTHING,
    SECRET_KEY,
    MotoServer,
    leftovers,
    live_instances,
)
from tests.support.netns import NetnsHost
from tests.support.procs import free_port, wait_for


@pytest.fixture
def ami(debian_ami):
    """The conftest's `debian_ami` on the conftest's `moto` and `ec2`."""
    return debian_ami


def clean_env(home, **extra: str) -> dict[str, str]:
    """No AWS settings from outside (flock_machine drops the caller's): no keys, no
    profile files, no instance role; `extra` on top."""
    return {"HOME": str(home), "PYTHONUNBUFFERED": "1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
            "AWS_CONFIG_FILE": str(home / "no-config"), **extra}


class CLI:
    def __init__(self, tmp_path, moto: MotoServer) -> None:
        self.store = tmp_path / "store"
        self.home = tmp_path / "home"
        self.home.mkdir(exist_ok=True)
        self.env = clean_env(self.home, AWS_ACCESS_KEY_ID=ACCESS_KEY,
                             AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        self.moto = moto

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
        return flock_machine("-s", str(self.store), *args, env=env or self.env,
                             timeout=timeout)

    def create(self, name: str, ami: str, *flags: str, env=None,
               timeout: float = 120) -> subprocess.CompletedProcess:
        return self("create", "-d", "amazonec2", "--amazonec2-endpoint", self.moto.endpoint,
                    "--amazonec2-ami", ami, *flags, name, env=env, timeout=timeout)

    def names(self) -> list[str]:
        """The machines in the store (read directly: cheaper than a CLI run)."""
        folder = self.store / "machines"
        return sorted(p.parent.name for p in folder.glob("*/config.json"))


@pytest.fixture
def cli(tmp_path, moto, ec2):
    runner = CLI(tmp_path, moto)
    yield runner
    for name in runner.names():   # a failing test still leaves nothing at the provider
        runner("rm", "-f", name)


@pytest.mark.parametrize("case", ["no-ami", "no-allow-cidr", "no-credentials", "bad-ami",
                                  "odd-tags", "unknown-flag"])
def test_bad_input_is_refused_before_anything_is_made(cli, ec2, ami, case):
    flags = ["--amazonec2-allow-cidr", "198.51.100.7"]
    env = None
    words: list[str] = []
    if case == "no-ami":
        ami, words = "", ["--amazonec2-ami is required"]
    elif case == "no-allow-cidr":
        flags, words = [], ["--amazonec2-allow-cidr", "only if you pass "
                                                  "--amazonec2-allow-cidr 0.0.0.0/0"]
    elif case == "no-credentials":
        env, words = clean_env(cli.home), ["no AWS credentials found",
                                           "--amazonec2-access-key"]
    elif case == "bad-ami":
        ami, words = "ami-00000000000bad000", ["Checking the AMI", "InvalidAMIID.NotFound"]
    elif case == "odd-tags":
        flags.extend(["--amazonec2-tags", "a,b,c"])
        words = ["--amazonec2-tags", "k1,v1,k2,v2"]
    else:
        flags.append("--amazonec2-bogus")
        words = ["Incorrect Usage.", "flag provided but not defined: -amazonec2-bogus"]
    done = cli.create("m1", ami, *flags, env=env)
    # Docker Machine exits 3 when the driver's pre-create check refuses (commands.go,
    # ErrDuringPreCreate), 1 for anything else, usage errors included
    pre_create = case == "bad-ami"   # no credentials: refused by from_flags already
    assert done.returncode == (3 if pre_create else 1), done.stderr
    assert ("Error with pre-create check: " in done.stderr) is pre_create
    for word in words:
        assert word in done.stderr
    assert "Traceback" not in done.stderr
    assert cli.names() == []            # refused before the record was made
    assert leftovers(ec2) == NOTHING


def test_bad_instance_type_leaves_a_record_and_nothing_at_the_provider(cli, ec2, ami):
    done = cli.create("m2", ami, "--amazonec2-allow-cidr", "198.51.100.7",
                      "--amazonec2-instance-type", "t3.bogus")
    assert done.returncode == 1
    assert "Launching the instance: EC2 refused RunInstances" in done.stderr
    assert "t3.bogus" in done.stderr and "cleaned up at the provider" in done.stderr
    assert leftovers(ec2) == NOTHING
    listing = cli("ls")
    assert "m2" in listing.stdout and "InvalidInstanceType" in listing.stdout
    assert cli("status", "m2").stdout.strip() == "Error"
    removed = cli("rm", "-y", "m2")
    assert removed.returncode == 0 and "Successfully removed m2" in removed.stdout
    assert cli.names() == []


def test_machine_lifecycle_through_the_cli(cli, ec2, ami):
    """Provisioning cannot reach moto's made-up public IP, so this create fails at SSH,
    after the instance exists: the record stays with its error and the instance keeps
    running until `rm`. Every driver command is then exercised through the CLI."""
    done = cli.create("m3", ami, "--amazonec2-allow-cidr", "198.51.100.0/24",
                      "--amazonec2-tags", "team,infra", "--amazonec2-root-size", "24",
                      "--amazonec2-session-token", "tok-abc", "--ssh-timeout", "2")
    assert done.returncode == 1
    assert "SSH user admin (Debian AMI)" in done.stdout
    [inst] = live_instances(ec2)
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert (tags["Name"], tags["team"], tags["flock-machine"]) == ("m3", "infra", "m3")

    folder = cli.store / "machines" / "m3"
    config = (folder / "config.json").read_text()
    for secret in (ACCESS_KEY, SECRET_KEY, "tok-abc"):
        assert secret not in config
    secrets = json.loads((folder / "secrets.json").read_text())
    assert secrets == {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY,
                       "session_token": "tok-abc"}
    assert stat.S_IMODE((folder / "secrets.json").stat().st_mode) == 0o600
    record = json.loads(config)["Driver"]   # Docker Machine's ConfigVersion 3 layout
    assert record["resources"]["instance_id"] == inst["InstanceId"]
    assert record["allow_cidrs"] == ["198.51.100.0/24"]

    # later commands work from the store alone, without AWS settings in the environment
    bare = clean_env(cli.home)
    assert cli("status", "m3", env=bare).stdout.strip() == "Running"
    assert cli("ip", "m3", env=bare).stdout.strip() == inst["PublicIpAddress"]
    assert cli("stop", "m3", env=bare).returncode == 0
    assert cli("status", "m3", env=bare).stdout.strip() == "Stopped"
    state = ec2.describe_instances(InstanceIds=[inst["InstanceId"]])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "stopped"
    removed = cli("rm", "-y", "m3", env=bare)
    assert removed.returncode == 0, removed.stderr
    assert leftovers(ec2) == NOTHING
    assert cli.names() == []


# --- a full create: the "instance" is a network-namespace host with a real sshd ----------
class CloudInit(threading.Thread):
    """What cloud-init does on a real instance, for the namespace host standing in for
    it: put the public key of the key pair the instance was launched with into the login
    user's authorized_keys (read from the EC2 API, as the instance's metadata has it)."""

    def __init__(self, moto: MotoServer, host) -> None:
        super().__init__(daemon=True)
        self.client = moto.client()
        self.host = host
        self.done: set[str] = set()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.1):
            with contextlib.suppress(Exception):
                for inst in live_instances(self.client):
                    if inst["InstanceId"] in self.done or not inst.get("KeyName"):
                        continue
                    [pair] = self.client.describe_key_pairs(
                        KeyNames=[inst["KeyName"]], IncludePublicKey=True)["KeyPairs"]
                    self.host.authorize(pair["PublicKey"])
                    self.done.add(inst["InstanceId"])

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)


def start_etcd(ip: str, folder) -> subprocess.Popen:
    """etcd on the host side of the namespace's veth, where the machine can reach it."""
    client, peer = f"http://{ip}:{free_port()}", f"http://{ip}:{free_port()}"
    with open(folder / "etcd.log", "ab") as log:
        proc = subprocess.Popen(
            ["etcd", "--name", "t", "--data-dir", str(folder / "etcd"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"t={peer}"], stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    proc.url = client   # type: ignore[attr-defined]
    wait_for(lambda: _get(f"{client}/health", None), 20, "etcd health")
    return proc


def _get(url: str, tls: ssl.SSLContext | None) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=5, context=tls) as answer:
            return json.loads(answer.read())
    except (OSError, ValueError):
        return None


def stop_proc(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_create_provisions_the_instance_over_ssh(cli, ec2, ami, tmp_path, moto):
    """The VPC's subnet is a /28 whose every address belongs to one namespace host, so
    whatever private IP EC2 gives the instance reaches that host's sshd: `create` waits for
    the instance, provisions it over SSH (agent and manager, exec runtime, etcd discovery)
    and the manager sees its own machine join."""
    host = NetnsHost(tmp_path / "host", extra_ips=12, label="ec2").start()
    cloud_init = CloudInit(moto, host)
    cloud_init.start()
    etcd = None
    try:
        assert host.network is not None and host.network.prefixlen == 28
        etcd = start_etcd(host.host_ip, tmp_path)
        vpc = ec2.create_vpc(CidrBlock=str(host.network))["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=str(host.network),
                                   AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
        discovery = etcd.url.replace("http://", "etcd://") + "/flock-ec2"
        done = cli.create(
            "ec2-e2e", ami, "--amazonec2-subnet-id", subnet, "--amazonec2-use-private-address",
            "--amazonec2-allow-cidr", str(host.network), "--amazonec2-ssh-user", "root",
            "--engine-runtime", "exec", "--swarm", "--swarm-master", "--swarm-discovery",
            discovery, "--install-dir", str(tmp_path / "opt-flock"), "--ssh-timeout", "60",
            timeout=700)
        assert done.returncode == 0, done.stdout + done.stderr
        [inst] = live_instances(ec2)
        ip = inst["PrivateIpAddress"]
        assert ip in host.extra_ips
        assert cli("ip", "ec2-e2e").stdout.strip() == ip
        assert cli("status", "ec2-e2e").stdout.strip() == "Running"
        assert cli("ls").stdout.split("\n")[1].split()[:4] == [
            "ec2-e2e", "-", "amazonec2", "Running"]

        # the manager on the machine answers with TLS and lists the machine's agent
        certs = cli.store / "certs"
        tls = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        tls.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))

        def node_listed():
            info = _get(f"https://{ip}:3376/info", tls) or {}
            rows = info.get("SystemStatus") or []
            return any(f"{ip}:4000" in str(value) for _key, value in rows)

        wait_for(node_listed, 60, "the manager to list the machine's agent")
        removed = cli("rm", "-y", "ec2-e2e")
        assert removed.returncode == 0, removed.stderr
        assert leftovers(ec2) == NOTHING
    finally:
        cloud_init.stop()
        if etcd is not None:
            stop_proc(etcd)
        host.stop()
