"""An agent in front of an engine that listens only on TCP+TLS, as Docker Machine's do.

Classic Swarm's `swarm join --addr` only registers the engine's address (cli/join.go)
and the manager then dials the engine with its own --tlsverify/--tlscacert/--tlscert/
--tlskey (cli/manage.go loadTLSConfig, handed to swarm.NewCluster). Flock's manager talks
to agents, so here the agent is the one dialling: `flock join --docker-host tcp://IP:PORT
--docker-tlsverify --docker-cert-path DIR`, or the docker CLI's DOCKER_HOST,
DOCKER_TLS_VERIFY and DOCKER_CERT_PATH. A real dockerd serves -H tcp://127.0.0.1:PORT
with --tlsverify; the real docker CLI drives it through a manager.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

from flock import certs
from flock.certs import TLSFiles, issue, make_ca, write_identity
from tests.conftest import free_port
from tests.integration.test_streams_and_limits import BUILD_AND_IMPORT
from tests.support import engines, rawhttp
from tests.support.cluster import Cluster
from tests.support.procs import REPO, Manager, Proc, wait_for

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, TLSFiles]:
    """DOCKER_CERT_PATH-style folders: the engine's server identity, the agent's client
    identity, a client cert of another CA, and a ca.pem of another CA."""
    base = tmp_path_factory.mktemp("engine-pki")
    ca, other = make_ca("Engine CA"), make_ca("Stranger CA")

    def made(name: str, issuer, trust, **kwargs) -> TLSFiles:
        return write_identity(base / name, issue(issuer, name, **kwargs), trust.cert)

    return {
        "engine": made("engine", ca, ca, ips=["127.0.0.1"], server=True),
        "client": made("client", ca, ca, role="admin"),
        "stranger": made("stranger", other, ca, role="admin"),  # trusts the engine
        "wrong-ca": made("wrong-ca", ca, other, role="admin"),  # does not
    }


@pytest.fixture(scope="module")
def tls_engine(tmp_path_factory, pki):
    """A dockerd with -H tcp://127.0.0.1:PORT --tlsverify (its unix socket is only for
    the fixture's own setup and teardown)."""
    engines.need_dockerd()
    files = pki["engine"]
    port = free_port()
    engine = engines.start_engine(tmp_path_factory.mktemp("tls-engine"), bridge=False,
                                  tls=(files.ca, files.cert, files.key),
                                  tcp=f"127.0.0.1:{port}")
    try:
        engine.import_busybox()
        engine.tcp_url = f"tcp://127.0.0.1:{port}"
        yield engine
    finally:
        engine.stop()


def folder(files: TLSFiles) -> str:
    return str(pathlib.Path(files.cert).parent)


@pytest.fixture(scope="module")
def cluster(tls_engine, pki, tmp_path_factory):
    options = {"docker_host": tls_engine.tcp_url, "docker_tlsverify": True,
               "docker_cert_path": folder(pki["client"])}
    with Cluster([tls_engine], tmp_path_factory.mktemp("tls-cluster"), ["machine1"],
                 agent_options=lambda name: options) as made:
        yield made


def in_terminal(host: str, command: str) -> str:
    """`docker ...` inside a pseudo-terminal, as a user types it."""
    done = subprocess.run(["script", "-qec", f"docker -H {host} {command}", "/dev/null"],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    return done.stdout.decode(errors="replace")


def test_docker_run_logs_exec_attach_and_info_reach_the_tls_engine(cluster, tls_engine):
    # Attached run: create, hijacked attach, start, wait, all over TLS; the CLI's
    # CloseWrite (close_notify) must reach cat as EOF, or this never ends.
    run = cluster.docker("run", "-i", "--rm", "busybox", "cat", input=b"through tls\n")
    assert run.stdout == b"through tls\n"

    cluster.docker("run", "-d", "--name", "talker", "busybox",
                   "sh", "-c", "echo to-the-logs; exec sleep 600")
    try:
        assert cluster.node_of("talker") == "machine1"
        wait_for_logs = cluster.docker("logs", "talker").stdout
        assert wait_for_logs == b"to-the-logs\n"
        # exec -i: stdin ends with close_notify, output still comes back.
        piped = cluster.docker("exec", "-i", "talker", "sh", "-c", "cat; echo done",
                               input=b"piped\n")
        assert piped.stdout == b"piped\ndone\n"
        # exec -it in a terminal: a TTY on the engine's side, raw stream back.
        out = in_terminal(cluster.url, "exec -it talker sh -c 'tty; echo exec-ok'")
        assert "/dev/pts/" in out and "exec-ok" in out
    finally:
        cluster.docker("rm", "-f", "talker", check=False)

    cluster.docker("run", "-di", "--name", "reader", "busybox",
                   "sh", "-c", "read line; echo got $line")
    try:
        attached = cluster.docker("attach", "reader", input=b"hello\n")
        assert attached.stdout == b"got hello\n"
    finally:
        cluster.docker("rm", "-f", "reader", check=False)

    info = cluster.docker("info").stdout.decode()
    assert " machine1: 127.0.0.1:" in info and "Status: Healthy" in info
    version = tls_engine.docker("version", "-f", "{{.Server.Version}}").stdout.decode().strip()
    assert f"ServerVersion: {version}" in info


def test_large_copies_both_ways_arrive_whole(cluster, tmp_path):
    """docker cp in and out (archive put/get): 24 MB each way through the TLS stream's
    flow control, the agent pausing and resuming on both sides."""
    blob = os.urandom(24 << 20)
    (tmp_path / "blob").write_bytes(blob)
    cluster.docker("run", "-d", "--name", "box", "busybox", "sleep", "600")
    try:
        cluster.docker("cp", str(tmp_path / "blob"), "box:/tmp/blob")
        cluster.docker("cp", "box:/tmp/blob", str(tmp_path / "back"))
        assert (tmp_path / "back").read_bytes() == blob
        sums = cluster.docker("exec", "box", "busybox", "md5sum", "/tmp/blob").stdout.split()[0]
        assert sums.decode() == hashlib.md5(blob).hexdigest()
    finally:
        cluster.docker("rm", "-f", "box", check=False)


@pytest.mark.parametrize("what,path,body", BUILD_AND_IMPORT,
                         ids=[case[0] for case in BUILD_AND_IMPORT])
def test_an_early_refusal_over_tls_is_the_engines_answer(cluster, tls_engine, what, path,
                                                         body):
    """The engine answers before reading a 10 MB body and closes: over TLS too, the
    agent's write fails alone and the answer still comes (docker_compat/tls_stream.py)."""
    data = body()
    direct = rawhttp.request(tls_engine.socket, "POST", path, data)
    assert direct.status >= 400
    relayed = rawhttp.request(("127.0.0.1", cluster.port), "POST", path, data)
    message = relayed.message.removeprefix("machine1: ")  # an import names its node
    assert (relayed.status, message) == (direct.status, direct.message)
    assert cluster.api("GET", "/_ping")[0] == 200


def join(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`flock join` with the docker runtime, no DOCKER_* from outside unless given."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return subprocess.run(
        [sys.executable, "-m", "flock", "join", "--advertise", f"127.0.0.1:{free_port()}",
         "--runtime", "docker", *args],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**clean, "PYTHONPATH": str(REPO), **(env or {})})


def refused(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_what_cannot_reach_the_engine_is_refused_with_a_reason(tls_engine, pki, tmp_path):
    url = tls_engine.tcp_url
    plain = refused(join("--docker-host", url))
    assert f"Docker Engine at {url} does not answer: it speaks TLS: add --docker-tlsverify" \
        in plain
    stranger = refused(join("--docker-host", url, "--docker-tlsverify",
                            "--docker-cert-path", folder(pki["stranger"])))
    # TLS 1.3: the engine checks our cert after our side of the handshake is done, and
    # its alert may be lost to the close that follows: either way the cert is named.
    assert "this agent's client certificate" in stranger
    untrusted = refused(join("--docker-host", url, "--docker-tlsverify",
                             "--docker-cert-path", folder(pki["wrong-ca"])))
    assert "its TLS certificate is not trusted" in untrusted
    dead = f"tcp://127.0.0.1:{free_port()}"
    assert f"Docker Engine at {dead} (TLS) does not answer: Connection refused" in refused(
        join("--docker-host", dead, "--docker-tlsverify",
             "--docker-cert-path", folder(pki["client"])))
    missing = refused(join("--docker-host", url, "--docker-tlsverify",
                           "--docker-cert-path", str(tmp_path)))
    assert f"--docker-tlsverify: {tmp_path}/ca.pem: no such file (the CA certificate)" \
        in missing
    assert "is a unix socket: TLS (--docker-tlsverify) is for tcp://" in refused(
        join("--docker-host", tls_engine.url, "--docker-tlsverify",
             "--docker-cert-path", folder(pki["client"])))
    assert "--docker-cert-path given without --docker-tlsverify" in refused(
        join("--docker-host", url, "--docker-cert-path", folder(pki["client"])))
    assert "unsupported --docker-host 'ssh://engine'" in refused(
        join("--docker-host", "ssh://engine"))


def test_an_address_that_is_no_tls_engine_is_refused(cluster, pki):
    """The manager's plain HTTP front stands in for an engine without TLS; as itself it is
    an address an agent must not front (DOCKER_HOST left pointing at the manager)."""
    no_tls = refused(join("--docker-host", cluster.url, "--docker-tlsverify",
                          "--docker-cert-path", folder(pki["client"])))
    assert "does not answer: it does not speak TLS" in no_tls
    loop = refused(join(env={"DOCKER_HOST": cluster.url}))
    assert f"Docker Engine at {cluster.url} does not answer: it is a Flock manager" in loop


def test_the_docker_cli_variables_point_the_agent_at_the_engine(tls_engine, pki, tmp_path):
    """DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH as `eval $(docker-machine env)`
    leaves them, with `flock join` and `flock manage` as real processes."""
    env = {"DOCKER_HOST": tls_engine.tcp_url, "DOCKER_TLS_VERIFY": "1",
           "DOCKER_CERT_PATH": folder(pki["client"])}
    clean = {k: "" for k in os.environ if k.startswith("DOCKER_")}
    agent_port = free_port()
    agent = Proc("agent", ["join", "--advertise", f"127.0.0.1:{agent_port}",
                           "--runtime", "docker", "--name", "machine2",
                           "--state-dir", str(tmp_path / "state")],
                 tmp_path, {**clean, **env}).start()
    manager = Manager("manager", tmp_path, f"nodes://127.0.0.1:{agent_port}",
                      env=clean).start()
    try:
        wait_for(lambda: manager.nodes().get("machine2") == "Healthy", 30,
                 "the node behind the TLS engine", step=0.3)
        status, listing = manager.api("GET", "/containers/json?all=1")
        assert status == 200 and isinstance(listing, list)
        assert "tcp://127.0.0.1" in agent.output() and "(TLS)" in agent.output()
    finally:
        manager.stop()
        agent.stop()


def test_engine_client_context_needs_no_client_cert_when_none_is_there(pki, tmp_path):
    """As the docker CLI: only ca.pem in the cert path is a TLS client without a cert
    (which a --tlsverify engine then refuses, as test above shows for a wrong one)."""
    (tmp_path / "ca.pem").write_bytes(pathlib.Path(pki["client"].ca).read_bytes())
    assert certs.engine_client_context(tmp_path).verify_mode.name == "CERT_REQUIRED"
