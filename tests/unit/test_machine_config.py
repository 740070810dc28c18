"""config.json in Docker Machine's ConfigVersion 3 layout: a record Docker Machine wrote is
read and written back unchanged, Flock's own round-trips, and a store in Flock's older
layout is migrated once, with a backup, atomically.

The records below follow libmachine/host/host.go (Host, Options), drivers/base.go
(BaseDriver), engine/engine.go, swarm/swarm.go and auth/auth.go of docker/machine 0.16;
DM_NONE is the `docker-machine inspect` of a none machine as published with Docker
Machine 0.16 (StorePath, URL and names changed), DM_GENERIC that of a generic machine made
with --generic-ssh-key ~/.ssh/id_ed25519 (drivers/generic/generic.go copies the key under
its own base name).
"""

from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path

import pytest

from flock.provisioner.errors import MachineError
from flock.provisioner.host import Host, HostOptions
from flock.provisioner.machine_config import from_config, to_config
from flock.provisioner.store import Store
from tests.support.machine_records import ROOT, assert_holds, dm_record

DM_NONE = dm_record("test", "none", {"IPAddress": "192.0.2.7",
                                      "URL": "tcp://192.0.2.7:2376"})
DM_GENERIC = dm_record("gen", "generic", {
    "IPAddress": "192.0.2.8", "SSHUser": "ubuntu", "SSHPort": 2222,
    "SSHKeyPath": f"{ROOT}/machines/gen/id_ed25519", "EnginePort": 2377,
    "SSHKey": "/home/alex/.ssh/id_ed25519"})


def dm_store(tmp_path, record: dict) -> Store:
    """A store at tmp_path holding `record` as Docker Machine wrote it (its paths rebased
    onto tmp_path, as if Docker Machine had run there)."""
    text = json.dumps(record, indent=4).replace(ROOT, str(tmp_path))
    folder = tmp_path / "machines" / record["Name"]
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(text)
    os.chmod(folder / "config.json", 0o600)   # persist/filestore.go writes 0600
    return Store(tmp_path)


# --- Docker Machine's records -------------------------------------------------------------
def test_a_docker_machine_none_record_reads_as_it_means():
    host = from_config(copy.deepcopy(DM_NONE))
    assert (host.name, host.driver_name) == ("test", "none")
    assert host.driver["URL"] == "tcp://192.0.2.7:2376"
    assert host.options.engine.install_url == "https://get.docker.com"
    assert host.options.swarm.image == "swarm:latest"
    assert host.options.swarm.manager_port == 3376            # from SwarmOptions.Host
    assert host.options.auth.server_cert == "server.pem"      # in its own folder
    assert host.options.auth.store_ca_cert == ""              # the store's certs/ca.pem


def test_a_docker_machine_generic_record_keeps_its_key_port_and_engine_port():
    host = from_config(copy.deepcopy(DM_GENERIC))
    assert host.driver["SSHKeyPath"] == "id_ed25519"          # follows the store
    assert host.driver["SSHPort"] == 2222 and host.driver["SSHUser"] == "ubuntu"
    assert host.options.engine.port == 2377                    # Driver.EnginePort


@pytest.mark.parametrize("record", [DM_NONE, DM_GENERIC], ids=["none", "generic"])
def test_docker_machines_record_is_written_back_with_every_field_it_had(record):
    again = to_config(from_config(copy.deepcopy(record)), Path(ROOT))
    assert_holds(again, record)
    assert list(again)[:5] == list(record)   # Docker Machine's order, Flock's fields after
    # Flock's own fields sit beside Docker Machine's
    assert again["HostOptions"]["EngineOptions"]["Runtime"] == "docker"
    assert again["HostOptions"]["SwarmOptions"]["ManagerPort"] == 3376


def test_keys_flock_does_not_know_survive_a_save(tmp_path):
    record = copy.deepcopy(DM_NONE)
    record["Driver"]["FutureField"] = {"x": 1}
    record["HostOptions"]["EngineOptions"]["SomethingNew"] = True
    store = dm_store(tmp_path, record)
    host = store.load("test")
    host.error = "seen"
    store.save(host)
    saved = json.loads((tmp_path / "machines" / "test" / "config.json").read_text())
    assert saved["Driver"]["FutureField"] == {"x": 1}
    assert saved["HostOptions"]["EngineOptions"]["SomethingNew"] is True
    assert saved["Error"] == "seen"
    assert stat.S_IMODE(os.stat(tmp_path / "machines" / "test" / "config.json").st_mode) \
        == 0o600   # Docker Machine's mode is kept


def test_reading_a_docker_machine_store_changes_nothing(tmp_path):
    store = dm_store(tmp_path, DM_GENERIC)
    path = tmp_path / "machines" / "gen" / "config.json"
    before = path.read_bytes()
    assert store.names() == ["gen"]
    assert store.load("gen").driver["SSHKeyPath"] == "id_ed25519"
    assert path.read_bytes() == before
    assert not (path.parent / "config.json.bak").exists()


def test_a_moved_store_follows_its_new_place(tmp_path):
    store = dm_store(tmp_path / "a", DM_GENERIC)
    os.rename(tmp_path / "a", tmp_path / "b")
    host = Store(tmp_path / "b").load("gen")
    doc = to_config(host, tmp_path / "b")
    assert doc["Driver"]["SSHKeyPath"] == str(tmp_path / "b" / "machines/gen/id_ed25519")
    assert doc["HostOptions"]["AuthOptions"]["CaCertPath"] == str(tmp_path / "b/certs/ca.pem")
    del store


def test_a_machine_of_a_driver_flock_lacks_is_read_but_never_written_or_removed(tmp_path):
    record = dm_record("vb", "virtualbox", {"VBoxManager": {}, "CPU": 1, "Memory": 1024})
    store = dm_store(tmp_path, record)
    path = tmp_path / "machines" / "vb" / "config.json"
    before = path.read_bytes()
    host = store.load("vb")
    assert host.driver_name == "virtualbox"
    with pytest.raises(MachineError, match='Driver "virtualbox" not found: Flock does not'):
        store.save(host)
    with pytest.raises(MachineError, match="use docker-machine for it"):
        store.remove("vb")
    assert path.read_bytes() == before


@pytest.mark.parametrize("version, message", [
    # libmachine/host/migrate.go: errConfigFromFuture
    (4, "config version is from the future -- you should upgrade"),
    (2, "ConfigVersion 2 is older than 3"),
])
def test_other_config_versions_are_refused_with_the_reason(tmp_path, version, message):
    record = copy.deepcopy(DM_NONE)
    record["ConfigVersion"] = version
    store = dm_store(tmp_path, record)
    with pytest.raises(MachineError, match=message):
        store.load("test")
    assert [type(x).__name__ for x in store.load_all()] == ["MachineError"]   # ls lists it


# --- Flock's own records -------------------------------------------------------------------
def test_flocks_record_is_written_in_docker_machines_layout_and_round_trips(tmp_path):
    store = Store(tmp_path)
    host = Host(name="g1", driver_name="generic",
                driver={"IPAddress": "10.0.0.5", "SSHUser": "root", "SSHPort": 22,
                        "SSHKey": "/k", "SSHKeyPath": "id_rsa"},
                options=HostOptions(install_dir="/srv/flock"))
    host.options.engine.labels = {"zone": "a"}
    host.options.engine.storage_driver = "overlay2"
    host.options.swarm.agent = True
    host.options.swarm.discovery = "etcd://10.0.0.2:2379/flock"
    host.options.swarm.join_opts = ["heartbeat=5s"]
    host.options.auth.server_ips = ["10.0.0.5"]
    store.create(host)
    doc = json.loads((tmp_path / "machines" / "g1" / "config.json").read_text())
    assert list(doc) == ["ConfigVersion", "Driver", "DriverName", "HostOptions", "Name",
                         "Error", "Created"]
    assert doc["ConfigVersion"] == 3
    assert doc["Driver"]["SSHKeyPath"] == str(tmp_path / "machines" / "g1" / "id_rsa")
    assert doc["Driver"]["StorePath"] == str(tmp_path)
    assert doc["Driver"]["EnginePort"] == 2376
    assert doc["HostOptions"]["EngineOptions"]["Labels"] == ["zone=a"]
    assert doc["HostOptions"]["EngineOptions"]["StorageDriver"] == "overlay2"
    swarm = doc["HostOptions"]["SwarmOptions"]
    assert (swarm["IsSwarm"], swarm["Agent"], swarm["ArbitraryJoinFlags"]) == \
        (True, True, ["heartbeat=5s"])
    assert doc["HostOptions"]["AuthOptions"]["StorePath"] == str(tmp_path / "machines/g1")
    again = store.load("g1")
    assert again.options == host.options
    assert again.driver == {**host.driver, "EnginePort": 2376}


# --- migration of Flock's older layout -----------------------------------------------------
LEGACY = {
    "name": "old1", "driver_name": "none", "driver": {"URL": "tcp://10.1.2.3:2376"},
    "options": {"engine": {"runtime": "docker", "port": 2376, "labels": {"zone": "b"},
                           "opts": [], "env": []},
                "swarm": {"agent": True, "master": True, "discovery": "etcd://e:2379/f",
                          "strategy": "binpack", "opts": [], "addr": "",
                          "agent_port": 4000, "manager_port": 3376},
                "auth": {"ca_cert": "ca.pem", "client_cert": "cert.pem",
                         "client_key": "key.pem", "server_cert": "server.pem",
                         "server_key": "server-key.pem", "extra_sans": ["dns.example"],
                         "server_ips": ["10.1.2.3"]},
                "install_dir": "/opt/flock", "ssh_timeout": 120.0,
                "provision_timeout": 900.0},
    "error": "", "created": "2026-01-02T03:04:05+00:00", "version": 1,
}


def test_an_old_flock_record_is_migrated_once_with_a_backup(tmp_path):
    folder = tmp_path / "machines" / "old1"
    folder.mkdir(parents=True)
    original = json.dumps(LEGACY, indent=2, sort_keys=True).encode()
    (folder / "config.json").write_bytes(original)
    host = Store(tmp_path).load("old1")
    assert host.options.swarm.strategy == "binpack" and host.options.swarm.master
    assert host.options.engine.labels == {"zone": "b"}
    assert (folder / "config.json.bak").read_bytes() == original   # filestore.go's name
    doc = json.loads((folder / "config.json").read_text())
    assert doc["ConfigVersion"] == 3 and doc["Name"] == "old1"
    assert doc["HostOptions"]["SwarmOptions"]["Strategy"] == "binpack"
    assert doc["HostOptions"]["AuthOptions"]["ServerCertSANs"] == ["dns.example"]
    assert doc["Created"] == "2026-01-02T03:04:05+00:00"
    # nothing half-written was left beside it, and a second read changes nothing
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "config.json.bak"]
    migrated = (folder / "config.json").read_bytes()
    assert Store(tmp_path).load("old1") == host
    assert (folder / "config.json").read_bytes() == migrated
