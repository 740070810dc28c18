"""One address for every client: a `flock manage` without --grpc-addr serves the
ClusterService on its Docker API listeners (manager/api/shared_port.py), so the `flock`
commands work with nothing but the docker CLI's DOCKER_HOST, DOCKER_TLS_VERIFY and
DOCKER_CERT_PATH, while the docker CLI and the Docker SDK keep speaking HTTP/1.1 on the
same port. Real processes: an exec-runtime agent and managers started as `flock manage`.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import ssl
import subprocess
import sys
import urllib.request

import docker
import grpc
import pytest

from flock.certs import TLSFiles, issue, make_ca, write_identity
from flock.protos import cluster_pb2 as pb
from flock.protos import cluster_pb2_grpc
from tests.support.procs import Agent, Manager, free_port, wait_for


def clean_env(home: pathlib.Path, **extra: str) -> dict[str, str]:
    """No DOCKER_* or FLOCK_* from outside, and a HOME whose ~/.docker holds no certs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "FLOCK_"))}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), "DOCKER_CONFIG": str(home / ".docker"), **extra}


def flock(home: pathlib.Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flock", *args], capture_output=True,
                          text=True, timeout=60, env=clean_env(home, **env))


def node_names(proc: subprocess.CompletedProcess) -> list[str]:
    assert proc.returncode == 0, proc.stderr
    return [node["name"] for node in json.loads(proc.stdout)]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """One agent; a manager on TCP and a unix socket, with no --grpc-addr."""
    folder = tmp_path_factory.mktemp("one-address")
    sock = folder / "flock.sock"
    agent = Agent("node-1", folder, "")
    manager = Manager("manager", folder, f"nodes://{agent.addr}",
                      extra=["-H", f"unix://{sock}"])
    try:
        agent.start()
        manager.start()
        wait_for(lambda: manager.nodes() == {"node-1": "Healthy"}, 30, "a healthy node")
        yield manager, sock, folder
    finally:
        manager.stop()
        agent.cleanup()


def test_flock_nodes_with_only_docker_host_over_tcp_and_the_unix_socket(plain):
    manager, sock, folder = plain
    home = folder / "home"
    assert node_names(flock(home, "nodes", "--format", "json",
                            DOCKER_HOST=f"tcp://{manager.addr}")) == ["node-1"]
    assert node_names(flock(home, "nodes", "--format", "json",
                            DOCKER_HOST=f"unix://{sock}")) == ["node-1"]
    listed = flock(home, "ps", "-a", "--format", "json", DOCKER_HOST=f"unix://{sock}")
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_docker_cli_and_sdk_still_speak_http_on_the_same_port(plain):
    manager, sock, folder = plain
    for host in (f"tcp://{manager.addr}", f"unix://{sock}"):
        cli = subprocess.run(["docker", "-H", host, "info", "--format", "{{json .}}"],
                             capture_output=True, text=True, timeout=60,
                             env=clean_env(folder / "home"))
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["Containers"] == 0
        sdk = docker.DockerClient(base_url=host, version="1.41")
        try:
            assert sdk.ping() is True
            assert sdk.containers.list(all=True) == []
        finally:
            sdk.close()


def test_flag_then_flock_host_then_docker_host(plain):
    manager, _, folder = plain
    home = folder / "home"
    good, away = f"tcp://{manager.addr}", f"tcp://127.0.0.1:{free_port()}"
    assert node_names(flock(home, "nodes", "--format", "json", "-H", good,
                            FLOCK_HOST=away, DOCKER_HOST=away)) == ["node-1"]
    assert node_names(flock(home, "nodes", "--format", "json",
                            FLOCK_HOST=good, DOCKER_HOST=away)) == ["node-1"]
    for where, source in (({"DOCKER_HOST": away}, "DOCKER_HOST"),
                          ({"FLOCK_HOST": away, "DOCKER_HOST": good}, "FLOCK_HOST")):
        failed = flock(home, "nodes", **where)
        assert failed.returncode == 1
        assert failed.stderr.startswith(
            f"flock nodes: cannot reach the manager at {away} (from {source}): nothing "
            "listens there"), failed.stderr


def test_a_tls_client_against_a_plain_manager_is_told_to_drop_tls(plain, pki):
    manager, _, folder = plain
    failed = flock(folder / "home", "nodes", DOCKER_HOST=f"tcp://{manager.addr}",
                   DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=folder_of(pki["client"]))
    assert (failed.returncode, failed.stderr) == (
        1, f"flock nodes: cannot reach the manager at tcp://{manager.addr} (from "
           "DOCKER_HOST): it does not speak TLS there; unset DOCKER_TLS_VERIFY and "
           "FLOCK_TLS_VERIFY (or drop --tlsverify)\n")


# ------------------------------------------------------------------ TLS on the same port
@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, TLSFiles]:
    """Folders of ca.pem, cert.pem and key.pem, as DOCKER_CERT_PATH takes them."""
    base = tmp_path_factory.mktemp("pki")
    ca, other = make_ca("Flock test CA"), make_ca("Stranger CA")

    def made(name, issuer, **kwargs) -> TLSFiles:
        return write_identity(base / name, issue(issuer, name, **kwargs), ca.cert)

    return {"manager": made("manager", ca, role="manager", ips=["127.0.0.1"], server=True),
            "client": made("client", ca, role="admin"),
            "stranger": made("stranger", other, role="admin")}


def folder_of(files: TLSFiles) -> str:
    return str(pathlib.Path(files.ca).parent)


def tls_flags(files: TLSFiles) -> list[str]:
    return ["--tlsverify", f"--tlscacert={files.ca}", f"--tlscert={files.cert}",
            f"--tlskey={files.key}"]


@pytest.fixture(scope="module")
def verified(pki, tmp_path_factory):
    """A manager with --tlsverify and no --grpc-addr (no agents: the front is the point)."""
    folder = tmp_path_factory.mktemp("one-address-tls")
    (folder / "agents").write_text("")
    manager = Manager("manager", folder, f"file://{folder / 'agents'}",
                      extra=tls_flags(pki["manager"]))
    try:
        manager.start()
        wait_for(lambda: _listens(manager.port), 30, "the TLS listener")
        yield manager, folder
    finally:
        manager.stop()


def _lists(service: cluster_pb2_grpc.ClusterServiceStub) -> bool:
    try:
        return list(service.ListNodes(pb.ListNodesRequest(), timeout=10).nodes) == []
    except grpc.RpcError:
        return False


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 1):
            return True
    except OSError:
        return False


def test_flock_with_docker_tls_verify_and_cert_path(verified, pki):
    manager, folder = verified
    done = flock(folder / "home", "nodes", "--format", "json",
                 DOCKER_HOST=f"tcp://{manager.addr}", DOCKER_TLS_VERIFY="1",
                 DOCKER_CERT_PATH=folder_of(pki["client"]))
    assert node_names(done) == []


def test_refused_without_a_client_cert_of_the_ca(verified, pki):
    manager, folder = verified
    stranger = flock(folder / "home", "nodes", DOCKER_HOST=f"tcp://{manager.addr}",
                     DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=folder_of(pki["stranger"]))
    assert stranger.returncode == 1
    assert (f"cannot reach the manager at tcp://{manager.addr} (from DOCKER_HOST): it "
            f"refused our client certificate ({pki['stranger'].cert})") in stranger.stderr
    # A gRPC client with no cert at all gets no answer either.
    channel = grpc.secure_channel(manager.addr, grpc.ssl_channel_credentials(
        root_certificates=pathlib.Path(pki["client"].ca).read_bytes()))
    with pytest.raises(grpc.RpcError) as refused:
        cluster_pb2_grpc.ClusterServiceStub(channel).ListNodes(pb.ListNodesRequest(),
                                                               timeout=10)
    channel.close()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_plain_client_against_a_tls_manager_is_told_to_turn_tls_on(verified):
    manager, folder = verified
    failed = flock(folder / "home", "nodes", DOCKER_HOST=f"tcp://{manager.addr}")
    assert (failed.returncode, failed.stderr) == (
        1, f"flock nodes: cannot reach the manager at tcp://{manager.addr} (from "
           "DOCKER_HOST): it speaks TLS there; set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH "
           "to the folder of ca.pem, cert.pem and key.pem (or pass --tlsverify)\n")


def test_docker_cli_and_sdk_over_tls_on_the_same_port(verified, pki, monkeypatch):
    manager, folder = verified
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests prefers them to ours
        monkeypatch.delenv(name, raising=False)
    client = pki["client"]
    cli = subprocess.run(["docker", *tls_flags(client), "-H", f"tcp://{manager.addr}",
                          "version", "--format", "{{.Server.Version}}"], capture_output=True,
                         text=True, timeout=60, env=clean_env(folder / "home"))
    assert cli.returncode == 0 and "flock" in cli.stdout, cli.stderr
    tls = docker.tls.TLSConfig(ca_cert=client.ca, verify=client.ca,
                               client_cert=(client.cert, client.key))
    sdk = docker.DockerClient(base_url=f"tcp://{manager.addr}", tls=tls, version="1.41")
    try:
        assert sdk.ping() is True and sdk.containers.list(all=True) == []
    finally:
        sdk.close()


def test_alpn_keeps_http1_for_clients_that_offer_it(verified, pki):
    """h2 only for a client that offers nothing else (gRPC); one offering both, as curl
    does, gets http/1.1, which is what the Docker API front reads."""
    manager, _ = verified
    client = pki["client"]

    def chosen(offer: list[str]) -> str | None:
        context = ssl.create_default_context(cafile=client.ca)
        context.load_cert_chain(client.cert, client.key)
        context.set_alpn_protocols(offer)
        with socket.create_connection(("127.0.0.1", manager.port), 10) as raw, \
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return tls.selected_alpn_protocol()

    assert chosen(["h2", "http/1.1"]) == "http/1.1"
    assert chosen(["h2"]) == "h2"
    context = ssl.create_default_context(cafile=client.ca)
    context.load_cert_chain(client.cert, client.key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    with urllib.request.urlopen(f"https://{manager.addr}/_ping", context=context,
                                timeout=10) as answer:
        assert answer.read() == b"OK"


# ------------------------------------------------------------------ the connection guard
def test_grpc_connections_count_against_the_cap_and_outlive_the_idle_timeout(tmp_path):
    """The split sits inside the guard: a held gRPC connection is one of the address's
    --max-client-conns, and a quiet stream is not cut by --idle-timeout."""
    (tmp_path / "agents").write_text("")
    manager = Manager("manager", tmp_path, f"file://{tmp_path / 'agents'}",
                      extra=["--max-client-conns", "1", "--idle-timeout", "1s"])
    manager.start()
    try:
        wait_for(lambda: _listens(manager.port) and manager.info(), 30, "the manager")
        channel = grpc.insecure_channel(manager.addr)
        service = cluster_pb2_grpc.ClusterServiceStub(channel)
        # The slot of the connection wait_for used frees when the manager sees it close.
        wait_for(lambda: _lists(service), 10, "a ListNodes answer")
        status, answer = manager.api("GET", "/_ping")
        assert status == 503 and "too many connections from 127.0.0.1" in answer["message"]
        with pytest.raises(grpc.RpcError) as quiet:
            for _ in service.Events(pb.EventsRequest(), timeout=3):
                pass
        assert quiet.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        channel.close()
        wait_for(lambda: manager.api("GET", "/_ping")[0] == 200, 10, "a free slot")
    finally:
        manager.stop()
