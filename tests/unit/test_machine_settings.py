"""Where `flock machine`'s settings come from: flag > MACHINE_* (Docker Machine's names,
cmd/docker-machine/machine.go and commands/commands.go) > FLOCK_MACHINE_* > default."""

from __future__ import annotations

import pytest

from flock.provisioner import settings
from flock.provisioner.errors import MachineError
from flock.provisioner.store import Store


@pytest.mark.parametrize("flag, env, expected", [
    ("/flag", {"MACHINE_STORAGE_PATH": "/dm", "FLOCK_MACHINE_STORAGE_PATH": "/fl"}, "/flag"),
    (None, {"MACHINE_STORAGE_PATH": "/dm", "FLOCK_MACHINE_STORAGE_PATH": "/fl"}, "/dm"),
    (None, {"FLOCK_MACHINE_STORAGE_PATH": "/fl"}, "/fl"),
    (None, {"MACHINE_STORAGE_PATH": "", "FLOCK_MACHINE_STORAGE_PATH": "/fl"}, "/fl"),
])
def test_storage_path_precedence(flag, env, expected):
    assert str(settings.storage_path(flag, env)) == expected


@pytest.mark.parametrize("setting", [settings.DRIVER, settings.TLS_CA_CERT,
                                     settings.TLS_CA_KEY, settings.TLS_CLIENT_CERT,
                                     settings.TLS_CLIENT_KEY])
def test_every_setting_reads_docker_machines_name_then_flocks(setting):
    suffix = setting.machine.removeprefix("MACHINE_")
    assert setting.flock == f"FLOCK_MACHINE_{suffix}"
    both = {setting.machine: "dm", setting.flock: "fl"}
    assert setting.value("flag", both) == "flag"
    assert setting.value(None, both) == "dm"
    assert setting.value(None, {setting.flock: "fl"}) == "fl"
    assert setting.value(None, {}) == ""


def test_tls_paths_are_absolute_and_flags_win(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"MACHINE_TLS_CA_CERT": "ca.pem", "FLOCK_MACHINE_TLS_CA_KEY": "/k/ca-key.pem",
           "MACHINE_TLS_CLIENT_CERT": "/c/cert.pem"}
    paths = settings.tls_paths(client_cert="/flag/cert.pem", environ=env)
    assert paths == settings.TLSPaths(str(tmp_path / "ca.pem"), "/k/ca-key.pem",
                                      "/flag/cert.pem", "")


def test_a_store_signs_with_the_tls_files_it_is_given(tmp_path):
    store = Store(tmp_path, settings.TLSPaths(ca_cert="/pki/ca.pem"))
    assert store.ca_cert_path.as_posix() == "/pki/ca.pem"
    assert store.ca_key_path == tmp_path / "certs" / "ca-key.pem"


@pytest.mark.parametrize("text, expected", [("1", True), ("true", True), ("TRUE", True),
                                            ("0", False), ("false", False), ("", False)])
def test_boolean_settings_read_as_go_parses_them(text, expected):
    assert settings.DEBUG.enabled(False, {"MACHINE_DEBUG": text}) is expected
    assert settings.NATIVE_SSH.enabled(False, {"FLOCK_MACHINE_NATIVE_SSH": text}) is expected
    assert settings.DEBUG.enabled(True, {"MACHINE_DEBUG": "0"}) is True   # the flag wins


def test_a_boolean_setting_that_is_not_one_says_so():
    with pytest.raises(MachineError, match=r"could not parse yes as bool value for flag "
                                           r"debug \(\$MACHINE_DEBUG\)"):
        settings.DEBUG.enabled(False, {"MACHINE_DEBUG": "yes"})


def test_default_is_docker_machines_unless_only_an_old_flock_store_exists(tmp_path):
    # mcndirs.GetBaseDir: ~/.docker/machine
    assert settings.default_storage_path(tmp_path) == tmp_path / ".docker" / "machine"
    (tmp_path / ".flock" / "machine").mkdir(parents=True)
    assert settings.default_storage_path(tmp_path) == tmp_path / ".flock" / "machine"
    (tmp_path / ".docker" / "machine").mkdir(parents=True)
    assert settings.default_storage_path(tmp_path) == tmp_path / ".docker" / "machine"


def test_machine_tls_variables_choose_the_ca_that_signs_and_are_recorded(tmp_path,
                                                                         monkeypatch):
    from flock.certs import issue, make_ca
    from flock.certs.check import check_signed_by, read_cert
    from flock.certs.files import cert_pem, key_pem
    from flock.provisioner import machine_certs
    from flock.provisioner.host import Host
    from flock.provisioner.machine_config import to_config

    def ca_files(name: str):
        ca = make_ca(name)
        folder = tmp_path / name
        folder.mkdir()
        (folder / "ca.pem").write_bytes(cert_pem(ca.cert))
        (folder / "ca-key.pem").write_bytes(key_pem(ca.key))
        client = issue(ca, "client", role="admin")
        (folder / "cert.pem").write_bytes(cert_pem(client.cert))
        (folder / "key.pem").write_bytes(key_pem(client.key))
        return folder

    docker_machine, flock_alias = ca_files("dm-ca"), ca_files("flock-ca")
    for prefix, folder in (("FLOCK_MACHINE_", flock_alias), ("MACHINE_", docker_machine)):
        monkeypatch.setenv(f"{prefix}TLS_CA_CERT", str(folder / "ca.pem"))
        monkeypatch.setenv(f"{prefix}TLS_CA_KEY", str(folder / "ca-key.pem"))
        monkeypatch.setenv(f"{prefix}TLS_CLIENT_CERT", str(folder / "cert.pem"))
        monkeypatch.setenv(f"{prefix}TLS_CLIENT_KEY", str(folder / "key.pem"))
    store = Store(tmp_path / "store")
    host = Host(name="m1", driver_name="none", driver={"URL": "tcp://10.0.0.1:2376"})
    store.create(host)
    machine_certs.write_server_cert(store, host, ["10.0.0.1"])
    folder = store.machine_dir("m1")
    # MACHINE_* beat FLOCK_MACHINE_*: Docker Machine's CA signed the server cert, and its
    # CA and client cert are the copies DOCKER_CERT_PATH points at
    _, server = read_cert(str(folder / "server.pem"), "server")
    _, ca = read_cert(str(docker_machine / "ca.pem"), "CA")
    check_signed_by(str(folder / "server.pem"), server, str(docker_machine / "ca.pem"), ca)
    assert (folder / "ca.pem").read_bytes() == (docker_machine / "ca.pem").read_bytes()
    assert (folder / "cert.pem").read_bytes() == (docker_machine / "cert.pem").read_bytes()
    assert not (store.root / "certs" / "ca.pem").exists()   # no CA of its own was made
    auth = to_config(host, store.root)["HostOptions"]["AuthOptions"]
    assert (auth["CaCertPath"], auth["ClientKeyPath"]) == (str(docker_machine / "ca.pem"),
                                                           str(docker_machine / "key.pem"))
