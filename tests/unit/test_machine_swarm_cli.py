"""A --swarm-master and its agents as `ls`, `env --swarm`, `config --swarm` and `active`
show them (none driver, in-process through flock's entry point, on a real store)."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

from flock.certs.check import read_cert
from flock.certs.issue import roles_of
from flock.cli import main
from tests.support.tls_endpoint import TLSEndpoint

DISCOVERY = "nodes://127.0.0.1:4000,127.0.0.2:4000"


def run(store, *args: str) -> int:
    return main(["machine", "-s", str(store), *args])


@contextmanager
def docker_host(url: str):
    saved = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = url
    try:
        yield
    finally:
        if saved is None:
            del os.environ["DOCKER_HOST"]
        else:
            os.environ["DOCKER_HOST"] = saved


@pytest.fixture
def manager():
    """Where boss's manager listens (--swarm-host): `env/config --swarm` dial it."""
    with TLSEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def store(tmp_path, capsys, manager):
    swarm = ["--swarm", "--swarm-discovery", DISCOVERY]
    assert run(tmp_path, "create", "-d", "none", "--url", "tcp://127.0.0.1:1", *swarm,
               "--swarm-master", "--swarm-host", f"tcp://0.0.0.0:{manager.port}",
               "boss") == 0
    assert run(tmp_path, "create", "-d", "none", "--url", "tcp://127.0.0.2:1", *swarm,
               "node") == 0
    assert run(tmp_path, "create", "-d", "none", "--url", "tcp://127.0.0.3:1", "alone") == 0
    capsys.readouterr()
    return tmp_path


def listing(store, capsys) -> dict[str, list[str]]:
    assert run(store, "ls", "--format", "{{.Name}}|{{.Active}}|{{.Swarm}}") == 0
    return {line.split("|")[0]: line.split("|")[1:]
            for line in capsys.readouterr().out.splitlines()}


def test_swarm_column_and_active_marks(store, capsys, manager):
    # commands/ls.go marks the master "NAME (master)"
    assert listing(store, capsys) == {"alone": ["-", ""], "boss": ["-", "boss (master)"],
                                      "node": ["-", "boss"]}
    with docker_host(manager.url):
        assert listing(store, capsys)["boss"] == ["* (swarm)", "boss (master)"]
        assert run(store, "active") == 0
        assert capsys.readouterr().out == "boss\n"
    with docker_host("tcp://127.0.0.2:1"):
        assert listing(store, capsys)["node"] == ["*", "boss"]


def test_swarm_filter(store, capsys):
    assert run(store, "ls", "-q", "--filter", "swarm=boss") == 0
    assert capsys.readouterr().out.split() == ["boss", "node"]


def test_env_and_config_with_swarm_use_the_managers_port(store, capsys, manager):
    folder = store / "machines" / "boss"
    manager.serve(folder / "server.pem", folder / "server-key.pem", store / "certs" / "ca.pem")
    assert run(store, "env", "--shell", "bash", "--swarm", "boss") == 0
    assert f'export DOCKER_HOST="{manager.url}"' in capsys.readouterr().out
    assert run(store, "config", "--swarm", "boss") == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"-H={manager.url}"


def test_env_swarm_fails_when_the_manager_does_not_answer(store, capsys, manager):
    # commands/env.go: "Error checking TLS connection: ..." and exit 1, --swarm too
    manager.close()
    assert run(store, "env", "--shell", "bash", "--swarm", "boss") == 1
    text = capsys.readouterr()
    assert text.out == ""
    assert text.err.startswith("Error checking TLS connection: Error checking and/or "
                               "regenerating the certs: There was an error validating "
                               f'certificates for host "127.0.0.1:{manager.port}": dial tcp')


def test_the_masters_cert_can_act_as_the_manager(store):
    _, cert = read_cert(str(store / "machines" / "boss" / "server.pem"))
    assert roles_of(cert) == ["manager"]
    _, cert = read_cert(str(store / "machines" / "node" / "server.pem"))
    assert roles_of(cert) == []
