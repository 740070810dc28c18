"""A store Docker Machine made, used by `flock machine` as it is.

The store is written by hand as Docker Machine 0.16 leaves one: certs/{ca,ca-key,cert,
key}.pem (libmachine/cert/bootstrap.go), and per machine config.json in ConfigVersion 3
(libmachine/host/host.go, persist/filestore.go: 0600, MarshalIndent with four spaces) with
the machine's copies of ca.pem, cert.pem, key.pem and its server.pem/server-key.pem
(provision/utils.go ConfigureAuth). Three machines:
- dm-none: driver none, its URL a real dockerd serving TLS with the store's server cert;
- dm-gen: driver generic, a real sshd in a network namespace, its key copied under its
  own base name (drivers/generic/generic.go: ResolveStorePath(path.Base(d.SSHKey)));
- dm-vb: driver virtualbox, which Flock does not have.
`ls`, `inspect`, `env` (then the docker CLI), `ssh`, `scp` and `rm` work on them, and no
config.json is rewritten by any of it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from flock.certs import issue, make_ca
from flock.certs.files import cert_pem, key_pem
from tests.support import engines
from tests.support.machine_cli import flock_machine, ok
from tests.support.machine_records import assert_holds, dm_record
from tests.support.netns import NetnsHost
from tests.support.procs import free_port

pytestmark = [pytest.mark.docker]


def machine(store: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
    """`flock machine ARGS...` with MACHINE_STORAGE_PATH, as a Docker Machine user has it."""
    return flock_machine(*args, env={"MACHINE_STORAGE_PATH": str(store), **(env or {})},
                         timeout=timeout)


def write(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)


def dm_machine(store: Path, ca, name: str, driver_name: str, driver: dict,
               ips: list[str]) -> dict:
    """A machine folder as Docker Machine leaves it; returns its config."""
    folder = store / "machines" / name
    record = dm_record(name, driver_name, driver, root=str(store))
    write(folder / "config.json", json.dumps(record, indent=4).encode(), 0o600)
    server = issue(ca, name, ips=ips, server=True)
    write(folder / "server.pem", cert_pem(server.cert), 0o644)
    write(folder / "server-key.pem", key_pem(server.key), 0o600)
    for file in ("ca.pem", "cert.pem", "key.pem"):
        shutil.copy(store / "certs" / file, folder / file)
    return record


@pytest.fixture(scope="module")
def dm(tmp_path_factory):
    if not engines.have_dockerd() or shutil.which("ip") is None \
            or not os.path.exists("/usr/sbin/sshd"):
        pytest.fail("needs root, dockerd and openssh-server (see scripts/test.sh)")
    root = tmp_path_factory.mktemp("dm")
    store = root / "docker-machine"
    ca, client = make_ca("dm-test"), None
    client = issue(ca, "dm-client", role="admin")
    write(store / "certs" / "ca.pem", cert_pem(ca.cert), 0o644)
    write(store / "certs" / "ca-key.pem", key_pem(ca.key), 0o600)
    write(store / "certs" / "cert.pem", cert_pem(client.cert), 0o644)
    write(store / "certs" / "key.pem", key_pem(client.key), 0o600)

    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    dm_machine(store, ca, "dm-none", "none", {"IPAddress": "127.0.0.1", "URL": url},
               ["127.0.0.1"])
    folder = store / "machines" / "dm-none"
    engine = ns = None
    try:
        engine = engines.start_engine(
            root / "engine", bridge=False, tcp=f"127.0.0.1:{port}",
            tls=(str(store / "certs" / "ca.pem"), str(folder / "server.pem"),
                 str(folder / "server-key.pem")))
        ns = NetnsHost(root / "ns", label="dms").start()
        key = root / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True)
        ns.authorize(key.with_suffix(".pub").read_text())
        gen = store / "machines" / "dm-gen"
        write(gen / "id_ed25519", key.read_bytes(), 0o600)
        dm_machine(store, ca, "dm-gen", "generic", {
            "IPAddress": ns.ip, "SSHUser": "root", "SSHPort": 22,
            "SSHKeyPath": str(gen / "id_ed25519"), "EnginePort": 2376, "SSHKey": str(key)},
            [ns.ip])
        dm_machine(store, ca, "dm-vb", "virtualbox",
                   {"IPAddress": "192.168.99.100", "SSHUser": "docker", "CPU": 1,
                    "Memory": 1024, "HostOnlyCIDR": "192.168.99.1/24"}, ["192.168.99.100"])
        version = engine.docker("version", "--format", "{{.Server.Version}}").stdout
        configs = {p.parent.name: p.read_bytes()
                   for p in (store / "machines").glob("*/config.json")}
        yield {"store": store, "url": url, "ns": ns, "version": version.decode().strip(),
               "configs": configs}
    finally:
        if engine is not None:
            engine.stop()
        if ns is not None:
            ns.stop()


def unchanged(dm, *names: str) -> None:
    """The named machines' config.json are the bytes Docker Machine wrote, and nothing
    was added beside them (no migration, no backup)."""
    for name in names:
        folder = dm["store"] / "machines" / name
        assert (folder / "config.json").read_bytes() == dm["configs"][name], name
        assert not (folder / "config.json.bak").exists(), name


def rows(text: str) -> dict[str, list[str]]:
    lines = [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]
    return {row[0]: row for row in lines[1:]}


def test_ls_lists_every_machine_and_says_why_one_cannot_be_used(dm):
    table = rows(ok(machine(dm["store"], "ls")))
    assert set(table) == {"dm-gen", "dm-none", "dm-vb"}
    assert table["dm-none"][1:5] == ["-", "none", "Running", dm["url"]]
    assert "v" + dm["version"] in table["dm-none"]
    assert table["dm-gen"][2:5] == ["generic", "Running", f"tcp://{dm['ns'].ip}:2376"]
    assert table["dm-vb"][2:4] == ["virtualbox", "Error"]
    # libmachine's words for a driver it has no plugin of, then why nothing happens to it
    assert table["dm-vb"][-1].startswith('Driver "virtualbox" not found: Flock does not')
    unchanged(dm, "dm-none", "dm-gen", "dm-vb")


def test_inspect_prints_the_record_docker_machine_wrote(dm):
    store = dm["store"]
    for name in ("dm-none", "dm-gen", "dm-vb"):
        doc = json.loads(ok(machine(store, "inspect", name)))
        assert_holds(doc, json.loads(dm["configs"][name]))
    assert ok(machine(store, "inspect", "-f", "{{.Driver.IPAddress}}", "dm-gen")) \
        == dm["ns"].ip + "\n"
    assert ok(machine(store, "inspect", "-f", "{{.Driver.SSHKeyPath}}", "dm-gen")) \
        == str(store / "machines" / "dm-gen" / "id_ed25519") + "\n"
    assert ok(machine(store, "inspect", "--format",
                      "{{.HostOptions.SwarmOptions.Agent}} {{.HostOptions.SwarmOptions.Host}}",
                      "dm-none")) == "false tcp://0.0.0.0:3376\n"
    # text/template on a map: a missing key is <no value>, exit 0 (commands/inspect.go)
    assert ok(machine(store, "inspect", "-f", "{{.Nope}}/{{.Driver.Nope.Deeper}}",
                      "dm-none")) == "<no value>/<no value>\n"
    assert json.loads(ok(machine(store, "inspect", "-f", "{{json .Driver}}", "dm-none"))) \
        ["URL"] == dm["url"]
    pretty = ok(machine(store, "inspect", "-f", "{{prettyjson .HostOptions.AuthOptions}}",
                        "dm-none"))
    assert pretty.startswith('{\n    "CaCertPath": ') and json.loads(pretty)["StorePath"] \
        == str(store / "machines" / "dm-none")
    bad = machine(store, "inspect", "-f", "{{.Name", "dm-none")
    assert bad.returncode == 1 and "Template parsing error" in bad.stderr
    unchanged(dm, "dm-none", "dm-gen", "dm-vb")


def test_env_points_the_docker_cli_at_docker_machines_machine(dm):
    text = ok(machine(dm["store"], "env", "--shell", "bash", "dm-none"))
    folder = dm["store"] / "machines" / "dm-none"
    # commands/env.go: DOCKER_CERT_PATH is the machine's folder
    assert f'export DOCKER_CERT_PATH="{folder}"' in text
    script = 'eval "$ENV_TEXT"; docker version --format "{{.Server.Version}}"'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "ENV_TEXT": text})
    assert done.stdout.strip() == dm["version"], done.stderr
    unchanged(dm, "dm-none")


def test_ssh_and_scp_use_the_key_docker_machine_copied(dm, tmp_path):
    store = dm["store"]
    done = machine(store, "ssh", "dm-gen", "--", "echo", "from-dm")
    assert (done.returncode, done.stdout) == (0, "from-dm\n"), done.stderr
    assert machine(store, "ssh", "dm-gen", "--", "exit 4").returncode == 4
    there = f"/tmp/dm-scp-{uuid.uuid4().hex[:8]}"
    local = tmp_path / "f.txt"
    local.write_text("over scp\n")
    try:
        ok(machine(store, "scp", str(local), f"dm-gen:{there}"))
        ok(machine(store, "scp", f"dm-gen:{there}", str(tmp_path / "back.txt")))
        assert (tmp_path / "back.txt").read_text() == "over scp\n"
    finally:
        machine(store, "ssh", "dm-gen", "--", "rm", "-f", there)
    unchanged(dm, "dm-gen")


def test_flock_machines_live_beside_docker_machines_in_its_layout(dm):
    store = dm["store"]
    url = f"tcp://127.0.0.1:{free_port()}"
    ok(machine(store, "create", "-d", "none", "--url", url, "fl-none"))
    try:
        doc = json.loads((store / "machines" / "fl-none" / "config.json").read_text())
        assert (doc["ConfigVersion"], doc["DriverName"], doc["Name"]) == (3, "none", "fl-none")
        assert doc["HostOptions"]["AuthOptions"]["CaCertPath"] == str(store / "certs/ca.pem")
        # signed by Docker Machine's CA: the CA already there was used, not replaced
        ca = (store / "certs" / "ca.pem").read_bytes()
        assert (store / "machines" / "fl-none" / "ca.pem").read_bytes() == ca
        assert "fl-none" in rows(ok(machine(store, "ls")))
    finally:
        ok(machine(store, "rm", "-y", "fl-none"))
    unchanged(dm, "dm-none", "dm-gen", "dm-vb")


def test_rm_removes_docker_machines_machines_but_never_one_flock_cannot_drive(dm):
    store = dm["store"]
    for flags in (["-y"], ["-f", "-y"]):
        refused = machine(store, "rm", *flags, "dm-vb")
        assert refused.returncode == 1, refused.stdout
        assert "never changes or removes it (use docker-machine for it)" in refused.stderr
        assert "rm -f" not in refused.stderr   # no advice that cannot work
    unchanged(dm, "dm-vb")
    for name in ("dm-none", "dm-gen"):
        ok(machine(store, "rm", "-y", name))
        assert not (store / "machines" / name).exists()
    assert set(rows(ok(machine(store, "ls")))) == {"dm-vb"}
