"""The real `flock machine` command with the none driver, pointed at a real dockerd that
serves TLS with the server cert the machine store made for it: ls, env, config, inspect,
url, ip, status, version, active, rm and export/import, checked with the docker CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time

import pytest

from tests.support import engines
from tests.support.machine_cli import flock_machine, ok
from tests.support.procs import REPO, free_port

pytestmark = pytest.mark.docker

HEADER = ["NAME", "ACTIVE", "DRIVER", "STATE", "URL", "SWARM", "DOCKER", "ERRORS"]


def machine(store, *args: str, env: dict[str, str] | None = None, stdin: str = "",
            timeout: float = 120) -> subprocess.CompletedProcess:
    """`flock machine -s STORE ARGS...` as a user runs it."""
    return flock_machine("-s", str(store), *args, env=env, input=stdin, timeout=timeout)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A store with machine m1 (driver none) and the dockerd behind its URL, serving the
    cert the store made for m1."""
    engines.need_dockerd()
    store = tmp_path_factory.mktemp("store")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    out = ok(machine(store, "create", "-d", "none", "--url", url, "--engine-label", "zone=a",
                     "m1"))
    assert "Docker is up and running!" in out
    folder = store / "machines" / "m1"
    engine = engines.start_engine(
        tmp_path_factory.mktemp("engine"), bridge=False, tcp=f"127.0.0.1:{port}",
        tls=(str(store / "certs" / "ca.pem"), str(folder / "server.pem"),
             str(folder / "server-key.pem")))
    version = engine.docker("version", "--format", "{{.Server.Version}}").stdout.decode()
    try:
        yield {"store": store, "url": url, "version": version.strip(), "engine": engine}
    finally:
        engine.stop()


def ls_rows(text: str) -> list[list[str]]:
    """`ls` output split on runs of 2+ spaces (cells themselves have single spaces)."""
    import re

    return [re.split(r"\s{2,}", line.strip()) for line in text.strip().splitlines()]


def test_ls_shows_state_url_and_the_engine_version_over_tls(world):
    rows = ls_rows(ok(machine(world["store"], "ls")))
    assert rows[0] == HEADER
    assert rows[1] == ["m1", "-", "none", "Running", world["url"], f"v{world['version']}"]
    active = ls_rows(ok(machine(world["store"], "ls", env={"DOCKER_HOST": world["url"]})))
    assert active[1][:2] == ["m1", "*"]


def test_ls_quiet_filters_and_formats(world):
    store = world["store"]
    assert ok(machine(store, "ls", "-q")) == "m1\n"
    assert ok(machine(store, "ls", "-q", "--filter", "driver=generic")) == ""
    assert ok(machine(store, "ls", "-q", "--filter", "driver=generic",
                      "--filter", "driver=none")) == "m1\n"
    assert ok(machine(store, "ls", "-q", "--filter", "name=^m", "--filter", "label=zone=a",
                      "--filter", "state=running")) == "m1\n"
    assert ok(machine(store, "ls", "-q", "--filter", "label=zone=b")) == ""
    assert ok(machine(store, "ls", "--format", "{{.Name}} {{.DriverName}} {{.State}}")) == \
        "m1 none Running\n"
    table = ok(machine(store, "ls", "--format", "table {{.Name}}\\t{{.URL}}"))
    assert ls_rows(table) == [["NAME", "URL"], ["m1", world["url"]]]


def test_a_host_that_never_answers_shows_timeout_and_the_rest_still_list(world, tmp_path):
    store = tmp_path / "store"
    ok(machine(store, "create", "-d", "none", "--url", world["url"], "fast"))
    # the fast machine talks to the real engine with certs of another store: borrow them
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (store / "machines" / "fast" / name).write_bytes(
            (world["store"] / "machines" / "m1" / name).read_bytes())
    with socket.socket() as silent:       # accepts TCP, never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        slow_url = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        ok(machine(store, "create", "-d", "none", "--url", slow_url, "slow"))
        began = time.monotonic()
        rows = ls_rows(ok(machine(store, "ls", "--timeout", "3")))
        took = time.monotonic() - began
    assert rows[1][:5] == ["fast", "-", "none", "Running", world["url"]]
    assert rows[2] == ["slow", "none", "Timeout"]
    assert took < 25, f"ls waited {took:.0f}s for a host with a 3s timeout"


def test_env_points_the_docker_cli_at_the_machine(world):
    store = world["store"]
    text = ok(machine(store, "env", "--shell", "bash", "m1"))
    folder = (store / "machines" / "m1").resolve()
    assert text.splitlines() == [
        'export DOCKER_TLS_VERIFY="1"',
        f'export DOCKER_HOST="{world["url"]}"',
        f'export DOCKER_CERT_PATH="{folder}"',
        'export DOCKER_MACHINE_NAME="m1"',
        "# Run this command to configure your shell:",
        f"# eval $(flock machine -s {store} env --shell bash m1)",
    ]
    # The text goes in through the environment, as `eval $(...)` gets it: pasted into the
    # script, bash ran the hint's `$(flock ...)` (util-linux flock: a file `machine` here).
    script = 'eval "$FLOCK_ENV"; docker version --format "{{.Server.Version}}"'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FLOCK_ENV": text})
    assert done.stdout.strip() == world["version"], done.stderr
    unset = ok(machine(store, "env", "--shell", "bash", "-u"))
    assert unset.splitlines()[:4] == ["unset DOCKER_TLS_VERIFY", "unset DOCKER_HOST",
                                      "unset DOCKER_CERT_PATH", "unset DOCKER_MACHINE_NAME"]


def test_env_no_proxy_and_other_shells(world):
    store = world["store"]
    text = ok(machine(store, "env", "--shell", "fish", "--no-proxy", "m1",
                      env={"NO_PROXY": "example.com"}))
    assert 'set -gx NO_PROXY "example.com,127.0.0.1";' in text.splitlines()
    assert text.splitlines()[-1] == f"# eval (flock machine -s {store} env --shell fish " \
                                    "--no-proxy m1)"
    power = ok(machine(store, "env", "--shell", "powershell", "m1"))
    assert f'$Env:DOCKER_HOST = "{world["url"]}"' in power.splitlines()


def test_config_gives_the_docker_flags(world):
    lines = ok(machine(world["store"], "config", "m1")).splitlines()
    folder = (world["store"] / "machines" / "m1").resolve()
    assert lines == ["--tlsverify", f'--tlscacert="{folder}/ca.pem"',
                     f'--tlscert="{folder}/cert.pem"', f'--tlskey="{folder}/key.pem"',
                     f"-H={world['url']}"]
    flags = [line.replace('"', "") for line in lines]
    done = subprocess.run(["docker", *flags, "version", "--format", "{{.Server.Version}}"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == world["version"], done.stderr


def test_inspect_ip_url_status_version(world):
    store = world["store"]
    doc = json.loads(ok(machine(store, "inspect", "m1")))
    assert doc["Name"] == "m1" and doc["DriverName"] == "none"
    assert doc["Driver"]["URL"] == world["url"] and doc["Driver"]["IPAddress"] == "127.0.0.1"
    assert doc["HostOptions"]["EngineOptions"]["Labels"] == ["zone=a"]
    assert ok(machine(store, "inspect", "--format", "{{.Driver.IPAddress}}", "m1")) == \
        "127.0.0.1\n"
    assert json.loads(ok(machine(store, "inspect", "-f", "{{json .Driver}}", "m1")))["URL"] \
        == world["url"]
    assert ok(machine(store, "ip", "m1")) == "127.0.0.1\n"
    assert ok(machine(store, "url", "m1")) == world["url"] + "\n"
    assert ok(machine(store, "status", "m1")) == "Running\n"
    assert ok(machine(store, "version", "m1")) == world["version"] + "\n"
    # commands/version.go: no name is the app's own version line (cli.ShowVersion)
    assert ok(machine(store, "version")).startswith("flock machine version ")


def test_active_names_the_machine_docker_host_points_at(world):
    assert ok(machine(world["store"], "active", env={"DOCKER_HOST": world["url"]})) == "m1\n"
    done = machine(world["store"], "active")
    assert done.returncode == 1 and "No active host found" in done.stderr


def test_export_then_import_into_another_store_keeps_it_working(world, tmp_path):
    archive = tmp_path / "m1.tar.gz"
    ok(machine(world["store"], "export", "m1", "-o", str(archive)))
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "m1/config.json" in names and "m1/key.pem" in names
    other = tmp_path / "other"
    assert ok(machine(other, "import", str(archive), "copy")) == "Imported copy\n"
    assert oct((other / "machines" / "copy" / "key.pem").stat().st_mode & 0o777) == "0o600"
    text = ok(machine(other, "env", "--shell", "bash", "copy"))
    # The text goes in through the environment, as `eval $(...)` gets it: pasted into the
    # script, bash ran the hint's `$(flock ...)` (util-linux flock: a file `machine` here).
    script = 'eval "$FLOCK_ENV"; docker version --format "{{.Server.Version}}"'
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "FLOCK_ENV": text})
    assert done.stdout.strip() == world["version"], done.stderr
    again = machine(other, "import", str(archive), "copy")
    assert again.returncode == 1 and 'Docker machine "copy" already exists' in again.stderr
    # from stdin, under its own name
    piped = subprocess.run(
        f"{sys.executable} -m flock machine -s {world['store']} export m1 | "
        f"{sys.executable} -m flock machine -s {other} import -", shell=True, cwd=REPO,
        capture_output=True, text=True, timeout=120, env={**os.environ,
                                                          "PYTHONPATH": str(REPO)})
    assert piped.returncode == 0 and piped.stdout == "Imported m1\n", piped.stderr


def test_secrets_stay_out_of_an_export_unless_asked(world, tmp_path):
    store = tmp_path / "store"
    ok(machine(store, "create", "-d", "none", "--url", world["url"], "s1"))
    secrets = store / "machines" / "s1" / "secrets.json"
    secrets.write_text('{"token": "x"}')
    plain, full = tmp_path / "plain.tgz", tmp_path / "full.tgz"
    done = machine(store, "export", "s1", "-o", str(plain))
    assert done.returncode == 0 and "secrets.json" in done.stderr
    ok(machine(store, "export", "s1", "-o", str(full), "--with-secrets"))
    with tarfile.open(plain) as a, tarfile.open(full) as b:
        assert "s1/secrets.json" not in a.getnames()
        assert "s1/secrets.json" in b.getnames()


def test_rm_asks_then_removes(world, tmp_path):
    store = tmp_path / "store"
    ok(machine(store, "create", "-d", "none", "--url", world["url"], "r1"))
    ok(machine(store, "create", "-d", "none", "--url", world["url"], "r2"))
    no = machine(store, "rm", "r1", stdin="n\n")
    assert no.returncode == 0 and no.stdout == (
        "About to remove r1\nWARNING: This action will delete both local reference and "
        "remote instance.\nAre you sure? (y/n): ")
    assert (store / "machines" / "r1" / "config.json").exists()
    closed = machine(store, "rm", "r1")   # EOF: nothing removed, exit 0 (commands/rm.go)
    assert closed.returncode == 0 and "Nothing removed." in closed.stderr
    assert (store / "machines" / "r1" / "config.json").exists()
    yes = ok(machine(store, "rm", "r1", stdin="y\n"))
    assert yes.endswith("Are you sure? (y/n): Successfully removed r1\n")
    assert ok(machine(store, "rm", "-y", "r2")).endswith("Successfully removed r2\n")
    assert ok(machine(store, "ls", "-q")) == ""
    missing = machine(store, "rm", "-y", "r1")
    assert missing.returncode == 1
    assert 'Error removing host "r1": Docker machine "r1" does not exist' in missing.stderr


# --- the none driver against a real engine (Docker Machine's drivers/none, commands/env.go,
# libmachine/check/check.go) ----------------------------------------------------------------
CHECK = ("Error checking TLS connection: Error checking and/or regenerating the certs: There "
         "was an error validating certificates for host ")


def test_none_stores_any_url_and_env_config_check_the_engine_first(world, tmp_path):
    store = tmp_path / "store"
    port = free_port()   # nothing listens there
    ok(machine(store, "create", "-d", "none", "--url", f"tcp://127.0.0.1:{port}", "gone"))
    ok(machine(store, "create", "-d", "none", "--url", "none", "nowhere"))
    for command in ("env", "config"):
        done = machine(store, command, "--shell", "bash", "gone") if command == "env" else \
            machine(store, command, "gone")
        assert done.returncode == 1 and done.stdout == "", done.stderr
        assert done.stderr.startswith(f'{CHECK}"127.0.0.1:{port}": dial tcp 127.0.0.1:{port}: '
                                      "connect: connection refused\nYou can attempt to "
                                      "regenerate them using 'flock machine regenerate-certs "
                                      "[name]'."), done.stderr
        done = machine(store, command, "nowhere")
        assert done.returncode == 1 and done.stdout == ""
        assert done.stderr.startswith("Error checking TLS connection: Error parsing URL: "
                                      "'none'"), done.stderr
    # a real engine that serves another CA's certificate: x509, before anything is printed
    ok(machine(store, "create", "-d", "none", "--url", world["url"], "stranger"))
    done = machine(store, "env", "--shell", "bash", "stranger")
    assert done.returncode == 1 and done.stdout == ""
    port = world["url"].rsplit(":", 1)[1]
    assert done.stderr.startswith(f'{CHECK}"127.0.0.1:{port}": x509: '), done.stderr


def test_none_cannot_be_restarted_or_get_new_certs(world, tmp_path):
    store = tmp_path / "store"
    ok(machine(store, "create", "-d", "none", "--url", world["url"], "n1"))
    cert = (store / "machines" / "n1" / "server.pem").read_bytes()
    done = machine(store, "restart", "n1")
    assert done.returncode == 1
    assert "hosts without a driver cannot be restarted" in done.stderr   # none/driver.go
    done = machine(store, "regenerate-certs", "-f", "n1")
    assert done.returncode == 1 and "uses the none driver" in done.stderr
    assert (store / "machines" / "n1" / "server.pem").read_bytes() == cert
