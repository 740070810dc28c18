"""The machine store: names, records, modes, and writes that are never seen half-done."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
import threading

import pytest

from flock.provisioner.errors import InvalidName, MachineError, MachineExists, MachineNotFound
from flock.provisioner.host import Host, HostOptions, check_name
from flock.provisioner.store import Store


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("name", ["a", "web-1", "node.example", "A9", "1x"])
def test_good_names(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-a", ".a", "a/b", "a b", "é", "a_b", "../a", "a\n"])
def test_bad_names(name):
    # a name no machine can have is one that does not exist (Docker Machine looks the
    # machine up before it validates the name: commands/commands.go)
    with pytest.raises(InvalidName, match="does not exist"):
        check_name(name)


def test_record_round_trip(tmp_path):
    store = Store(tmp_path)
    host = Host(name="m1", driver_name="none", driver={"URL": "tcp://1.2.3.4:2376"},
                options=HostOptions(install_dir="/srv/flock"))
    host.options.engine.labels = {"zone": "a"}
    host.options.swarm.master = True
    store.create(host)
    again = store.load("m1")
    # the driver's record comes back with Docker Machine's BaseDriver fields beside its own
    # (libmachine/drivers/base.go: IPAddress, SSHUser, SSHPort, SSHKeyPath, empty here)
    assert again.driver == {"IPAddress": "", "SSHUser": "", "SSHPort": 0, "SSHKeyPath": "",
                            "URL": "tcp://1.2.3.4:2376"}
    again.driver = host.driver
    assert again == host
    assert store.names() == ["m1"]
    assert mode(store.machine_dir("m1") / "config.json") == 0o644


def test_create_refuses_a_taken_name_even_in_a_race(tmp_path):
    store = Store(tmp_path)
    results: list[str] = []

    def attempt() -> None:
        try:
            Store(tmp_path).create(Host(name="same", driver_name="none"))
            results.append("made")
        except MachineExists:
            results.append("exists")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["exists"] * 7 + ["made"]
    assert [p.name for p in store.machine_dir("same").iterdir()] == ["config.json"]


def test_missing_and_broken_records(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(MachineNotFound, match='Docker machine "ghost" does not exist'):
        store.load("ghost")
    store.create(Host(name="good", driver_name="none"))
    (tmp_path / "machines" / "bad").mkdir()
    (tmp_path / "machines" / "bad" / "config.json").write_text("{")
    (tmp_path / "machines" / "empty").mkdir()          # no config: not a machine
    loaded = store.load_all()
    assert [type(x) for x in loaded] == [MachineError, Host]
    assert "rm -f bad" in str(loaded[0])


def test_secrets_are_0600_whatever_the_umask(tmp_path):
    store = Store(tmp_path)
    store.create(Host(name="m1", driver_name="none"))
    old = os.umask(0)
    try:
        store.save_secrets("m1", {"secret_key": "s3cr3t"})
    finally:
        os.umask(old)
    path = store.machine_dir("m1") / "secrets.json"
    assert mode(path) == 0o600
    assert store.load_secrets("m1") == {"secret_key": "s3cr3t"}
    assert "s3cr3t" not in (store.machine_dir("m1") / "config.json").read_text()
    assert store.load_secrets("other") == {}


def test_storage_path_from_the_environment(tmp_path):
    saved = os.environ.get("FLOCK_MACHINE_STORAGE_PATH")
    os.environ["FLOCK_MACHINE_STORAGE_PATH"] = str(tmp_path / "elsewhere")
    try:
        assert Store().root == tmp_path / "elsewhere"
        assert Store(tmp_path).root == tmp_path
    finally:
        if saved is None:
            del os.environ["FLOCK_MACHINE_STORAGE_PATH"]
        else:
            os.environ["FLOCK_MACHINE_STORAGE_PATH"] = saved


def _writer(root: str, rounds: int) -> None:
    store = Store(root)
    for i in range(rounds):
        host = Host(name="busy", driver_name="none",
                    driver={"pad": "x" * (1000 + (i % 7) * 5000), "round": i})
        store.save(host)


def test_a_reader_never_sees_a_half_written_config(tmp_path):
    """Writers in other processes rewrite a large config while this one reads it: every
    read parses (the rename is atomic) and no temporary file is left behind."""
    store = Store(tmp_path)
    store.create(Host(name="busy", driver_name="none"))
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(str(tmp_path), 150)) for _ in range(2)]
    for writer in writers:
        writer.start()
    reads = 0
    path = store.machine_dir("busy") / "config.json"
    while any(w.is_alive() for w in writers) or reads < 50:
        json.loads(path.read_text())   # raises on a torn write
        reads += 1
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0
    assert store.load("busy").driver["round"] == 149
    assert [p.name for p in store.machine_dir("busy").iterdir()] == ["config.json"]


def test_remove(tmp_path):
    store = Store(tmp_path)
    store.create(Host(name="m1", driver_name="none"))
    store.remove("m1")
    assert store.names() == [] and not store.exists("m1")
