"""`create`'s common flags as HostOptions, fleet names, and the progress display."""

from __future__ import annotations

import argparse
import io
import threading

import pytest

from flock.provisioner.commands.create import add_create_parser, host_options, machine_names
from flock.provisioner.errors import MachineError
from flock.provisioner.progress import FleetProgress


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_create_parser(parser.add_subparsers())
    return parser.parse_args(["create", *argv])


def test_flags_fill_the_host_options():
    args = parse("--engine-runtime", "exec", "--engine-port", "2377",
                 "--engine-label", "zone=a", "--engine-label", "disk=ssd=fast",
                 "--engine-opt", "log-level=debug", "--engine-env", "HTTP_PROXY=http://p:3128",
                 "--swarm-master", "--swarm-discovery", "token://abc123",
                 "--swarm-strategy", "binpack", "--swarm-opt", "heartbeat=5s",
                 "--swarm-addr", "10.0.0.5:4000", "--tls-san", "docker.example.com",
                 "--install-dir", "/srv/flock/", "--ssh-timeout", "30",
                 "--provision-timeout", "600", "m1")
    options = host_options(args)
    engine, swarm = options.engine, options.swarm
    assert (engine.runtime, engine.port) == ("exec", 2377)
    assert engine.labels == {"zone": "a", "disk": "ssd=fast"}
    assert engine.opts == ["log-level=debug"] and engine.env == ["HTTP_PROXY=http://p:3128"]
    assert swarm.agent and swarm.master       # a master is an agent too
    assert (swarm.discovery, swarm.strategy, swarm.addr) == ("token://abc123", "binpack",
                                                             "10.0.0.5:4000")
    assert swarm.opts == ["heartbeat=5s"]
    assert options.auth.extra_sans == ["docker.example.com"]
    assert (options.install_dir, options.ssh_timeout, options.provision_timeout) == \
        ("/srv/flock", 30.0, 600.0)


def test_defaults():
    options = host_options(parse("m1"))
    assert options.engine.runtime == "docker" and options.engine.port == 2376
    assert not options.swarm.agent and options.install_dir == "/opt/flock"
    assert options.swarm.manager_port == 3376 and options.swarm.host == "tcp://0.0.0.0:3376"
    assert (options.engine.storage_driver, options.engine.insecure_registry,
            options.engine.registry_mirror) == ("", [], [])


def test_docker_machines_engine_and_swarm_flags():
    # the flags of Docker Machine's commands/create.go that Flock had no name for
    args = parse("--engine-storage-driver", "vfs", "--engine-insecure-registry", "r1:5000",
                 "--engine-insecure-registry", "r2:5000", "--engine-registry-mirror",
                 "http://mirror:5000", "--engine-install-url", "https://get.example.com",
                 "--swarm", "--swarm-master", "--swarm-discovery", "token://abc",
                 "--swarm-host", "tcp://0.0.0.0:4376", "--swarm-join-opt", "heartbeat=10s",
                 "--swarm-join-opt", "ttl=30s", "--swarm-image", "swarm:1.2.9",
                 "--swarm-experimental", "m1")
    options = host_options(args)
    engine, swarm = options.engine, options.swarm
    assert engine.storage_driver == "vfs"
    assert engine.insecure_registry == ["r1:5000", "r2:5000"]
    assert engine.registry_mirror == ["http://mirror:5000"]
    assert engine.install_url == "https://get.example.com"
    assert (swarm.host, swarm.manager_port) == ("tcp://0.0.0.0:4376", 4376)
    assert swarm.join_opts == ["heartbeat=10s", "ttl=30s"]
    assert (swarm.image, swarm.experimental) == ("swarm:1.2.9", True)


def test_generic_engine_port_is_the_engine_port():
    # drivers/generic/generic.go --generic-engine-port
    assert host_options(parse("-d", "generic", "--generic-engine-port", "2377",
                              "m1")).engine.port == 2377
    with pytest.raises(MachineError, match="disagree"):
        host_options(parse("-d", "generic", "--generic-engine-port", "2377",
                           "--engine-port", "2378", "m1"))


@pytest.mark.parametrize("argv, message", [
    (["--engine-port", "70000"], "--engine-port 70000"),
    (["--swarm-discovery", "token://x"], "without --swarm"),
    (["--swarm", "--swarm-discovery", "etcd://"], "--swarm-discovery 'etcd://'"),
    (["--swarm-opt", "=x"], "--swarm-opt '=x'"),
    (["--provision-timeout", "-1"], "--provision-timeout -1"),
    (["--swarm-host", "0.0.0.0:3376"], "--swarm-host '0.0.0.0:3376': give tcp://IP:PORT"),
    (["--engine-insecure-registry", "a b"], "--engine-insecure-registry 'a b'"),
])
def test_bad_flags(argv, message):
    with pytest.raises(MachineError, match=message):
        host_options(parse(*argv, "m1"))


def test_fleet_names():
    assert machine_names(parse("--count", "3", "--prefix", "web-")) == ["web-1", "web-2",
                                                                       "web-3"]
    assert machine_names(parse("a", "--name", "b")) == ["a", "b"]
    assert machine_names(parse("--name", "a", "--name", "b")) == ["a", "b"]
    with pytest.raises(MachineError, match="Error creating machine: Invalid hostname"):
        machine_names(parse("--count", "1", "--prefix", "web_"))
    with pytest.raises(MachineError, match="--count 0"):
        machine_names(parse("--count", "0", "--prefix", "w"))


def test_every_installed_drivers_flags_are_offered():
    args = parse("m1")
    assert "none" in args.driver_flags
    assert any(a.option_strings == ["--url"] for a in args.driver_flags["none"])


def test_plain_progress_names_each_line_of_a_fleet():
    out, errors = io.StringIO(), io.StringIO()
    with FleetProgress(["a", "b"], out=out, errors=errors) as progress:
        threads = [threading.Thread(target=lambda n=n: (progress.step(n, "Creating"),
                                                        progress.done(n, "Up")))
                   for n in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        progress.failed("b", "Error creating machine: boom")
    assert not progress.live     # not a terminal
    assert sorted(out.getvalue().splitlines()) == ["(a) Creating", "(a) Up", "(b) Creating",
                                                   "(b) Up"]
    assert errors.getvalue() == "(b) Error creating machine: boom\n"


def test_one_machine_gets_plain_unprefixed_lines():
    out = io.StringIO()
    with FleetProgress(["only"], out=out) as progress:
        progress.reporter("only")("Waiting for SSH...")
    assert out.getvalue() == "Waiting for SSH...\n"


def test_live_table_shows_each_machines_step():
    out = io.StringIO()
    with FleetProgress(["web-1", "web-2"], out=out, live=True) as progress:
        progress.step("web-1", "Installing the engine")
        progress.done("web-2", "Docker is up and running!")
        progress.failed("web-1", "Error creating machine: no IP")
    text = out.getvalue()
    assert "MACHINE" in text and "STEP" in text
    assert "web-1" in text and "no IP" in text and "Docker is up and running!" in text


def test_generic_takes_the_users_id_rsa_when_no_key_is_given(tmp_path, monkeypatch):
    # drivers/generic/generic.go: --generic-ssh-key defaults to ~/.ssh/id_rsa
    from flock.provisioner.drivers.generic import GenericDriver

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GENERIC_SSH_KEY", raising=False)
    args = parse("-d", "generic", "--generic-ip-address", "192.0.2.10", "m1")
    assert GenericDriver.from_flags("m1", tmp_path / "m1", args).ssh_key == ""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_rsa").write_text("a key\n")
    assert GenericDriver.from_flags("m1", tmp_path / "m1", args).ssh_key == \
        str(tmp_path / ".ssh" / "id_rsa")
    given = parse("-d", "generic", "--generic-ip-address", "192.0.2.10", "--generic-ssh-key",
                  str(tmp_path / "other"), "m1")
    assert GenericDriver.from_flags("m1", tmp_path / "m1", given).ssh_key == \
        str(tmp_path / "other")
