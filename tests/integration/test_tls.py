"""Mutual TLS on every front, against real programs: two exec-runtime agents and a manager
as `flock join`/`flock manage` processes with --tlsverify, driven by the real docker CLI,
the Docker SDK and the manager's own gRPC client. Also: the checks at start (bad cert
files stop the program with a message naming the file), the refusal to serve plaintext
on a reachable address, and a scan of every output for the private keys' content."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
import os
import pathlib
import ssl
import subprocess
import sys
import urllib.request

import docker
import pytest

from flock import certs
from flock.agent.cli import JoinError, load_tls
from flock.agent.server import AgentService, make_server
from flock.busybox import busybox_rootfs_tar
from flock.certs import TLSFiles, issue, make_ca, write_identity
from flock.cli import build_parser
from flock.manager.app import ConfigError
from flock.manager.cli import config_from_args
from flock.manager.cluster.agent_client import AgentClient, AgentError, AgentUnavailable
from flock.manager.cluster.call_stream import StreamSlots
from flock.protos import agent_pb2
from tests.support.etcd import Etcd, have_etcd
from tests.support.procs import REPO, Agent, Manager, free_port, wait_for

OUTPUTS: list[str] = []  # everything the CLI printed, scanned for key material at the end


@dataclasses.dataclass
class PKI:
    folder: pathlib.Path
    manager: TLSFiles  # server cert for 127.0.0.1/localhost + client role manager
    agent: TLSFiles  # server cert for 127.0.0.1
    client: TLSFiles  # admin client cert: what DOCKER_CERT_PATH points at
    stranger: TLSFiles  # admin client cert of another CA (with our ca.pem to trust us)
    stranger_manager: TLSFiles  # manager role, another CA
    expired: TLSFiles
    wrong_host: TLSFiles  # server cert for 10.255.0.1 only

    def keys(self) -> list[str]:
        return sorted({str(p) for p in self.folder.rglob("*key*.pem")})


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    base = tmp_path_factory.mktemp("pki")
    ca, other = make_ca("Flock test CA"), make_ca("Stranger CA")
    certs.write_ca(base / "ca", ca)
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)

    def made(name, issuer, trust, **kwargs) -> TLSFiles:
        return write_identity(base / name, issue(issuer, name, **kwargs), trust.cert)

    local = {"ips": ["127.0.0.1"], "dns": ["localhost"], "server": True}
    return PKI(
        folder=base,
        manager=made("manager", ca, ca, role="manager", **local),
        agent=made("agent", ca, ca, ips=["127.0.0.1"], server=True),
        client=made("client", ca, ca, role="admin"),
        stranger=made("stranger", other, ca, role="admin"),
        stranger_manager=made("stranger-manager", other, other, role="manager"),
        expired=made("expired", ca, ca, role="manager", days=5, start=past, **local),
        wrong_host=made("wrong-host", ca, ca, ips=["10.255.0.1"], server=True,
                        role="manager"),
    )


def tls_flags(files: TLSFiles) -> list[str]:
    return ["--tlsverify", f"--tlscacert={files.ca}", f"--tlscert={files.cert}",
            f"--tlskey={files.key}"]


def clean_env(home: pathlib.Path, **extra: str) -> dict[str, str]:
    """No DOCKER_* from outside, and a HOME whose ~/.docker holds no certs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), "DOCKER_CONFIG": str(home / ".docker"), **extra}


def docker_cli(port: int, home: pathlib.Path, *args: str, flags: list[str] = (),
               env: dict[str, str] | None = None, stdin: bytes | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *flags, "-H", f"tcp://127.0.0.1:{port}", *args],
                          capture_output=True, input=stdin, timeout=60,
                          env=env or clean_env(home))
    OUTPUTS.append(proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace"))
    if check:
        assert proc.returncode == 0, f"docker {' '.join(args)}: {proc.stderr.decode()}"
    return proc


def https_info(port: int, files: TLSFiles) -> dict:
    ctx = ssl.create_default_context(cafile=files.ca)
    ctx.load_cert_chain(files.cert, files.key)
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/info", context=ctx,
                                    timeout=5) as answer:
            return json.loads(answer.read())
    except OSError:
        return {}


def healthy(info: dict) -> int:
    return sum(1 for k, v in info.get("SystemStatus") or [] if k.endswith("Status")
               and v == "Healthy")


@pytest.fixture(scope="module")
def cluster(pki, tmp_path_factory):
    """Two agents and a manager, every link mutual TLS; busybox on both nodes."""
    folder = tmp_path_factory.mktemp("tls-cluster")
    agents = [Agent(f"node-{i}", folder, "", extra=tls_flags(pki.agent)) for i in (1, 2)]
    manager = Manager("manager", folder, "nodes://" + ",".join(a.addr for a in agents),
                      extra=tls_flags(pki.manager))
    try:
        for proc in (*agents, manager):
            proc.start()
        wait_for(lambda: healthy(https_info(manager.port, pki.client)) == 2, 30,
                 "two healthy nodes over TLS")
        docker_cli(manager.port, folder / "home", "import", "-", "busybox:latest",
                   flags=tls_flags(pki.client), stdin=busybox_rootfs_tar())
        yield manager, agents, folder
    finally:
        manager.stop()
        for agent in agents:
            agent.cleanup()


# ------------------------------------------------------------------ the Docker API front
def test_docker_cli_without_a_client_cert_is_refused(cluster, pki):
    manager, _, folder = cluster
    plain = docker_cli(manager.port, folder / "home", "version", check=False)
    assert plain.returncode != 0
    no_cert = docker_cli(manager.port, folder / "home", "version", check=False,
                         flags=["--tls", f"--tlscacert={pki.client.ca}"])
    assert no_cert.returncode != 0 and "flock" not in no_cert.stdout.decode()


@pytest.fixture
def sdk_env(monkeypatch):
    """requests lets these variables override the SDK's own CA: drop them."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_a_client_cert_of_another_ca_is_refused(cluster, pki, sdk_env):
    manager, _, folder = cluster
    proc = docker_cli(manager.port, folder / "home", "version", check=False,
                      flags=tls_flags(pki.stranger))
    assert proc.returncode != 0 and "swarm/" not in proc.stdout.decode()
    tls = docker.tls.TLSConfig(client_cert=(pki.stranger.cert, pki.stranger.key),
                               ca_cert=pki.stranger.ca, verify=pki.stranger.ca)
    with pytest.raises(docker.errors.DockerException) as err:
        docker.DockerClient(base_url=f"tcp://127.0.0.1:{manager.port}", tls=tls).version()
    assert "CERTIFICATE_VERIFY_FAILED" not in str(err.value)  # we trusted it; it refused us


def test_the_right_cert_works_with_flags_env_and_the_sdk(cluster, pki, sdk_env):
    manager, _, folder = cluster
    out = docker_cli(manager.port, folder / "home", "info", "--format",
                     "{{json .SystemStatus}}", flags=tls_flags(pki.client)).stdout
    rows = dict(json.loads(out))
    assert rows["Docker API TLS"].startswith("verify client certs; cert expires ")
    assert rows["Agent TLS"].startswith("mutual; cert expires ")
    env = clean_env(folder / "home", DOCKER_TLS_VERIFY="1",
                    DOCKER_CERT_PATH=str(pathlib.Path(pki.client.cert).parent))
    version = docker_cli(manager.port, folder / "home", "version", "--format",
                         "{{.Server.Version}}", env=env).stdout.decode().strip()
    assert version.startswith("swarm/1.2.9 flock/")
    tls = docker.tls.TLSConfig(client_cert=(pki.client.cert, pki.client.key),
                               ca_cert=pki.client.ca, verify=pki.client.ca)
    client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{manager.port}", tls=tls)
    try:
        assert client.info()["ServerVersion"].startswith("swarm/1.2.9 flock/")
        assert any(img.tags == ["busybox:latest"] for img in client.images.list())
    finally:
        client.close()


def test_the_tls_cluster_runs_a_container_end_to_end(cluster, pki):
    manager, _, folder = cluster
    home, flags = folder / "home", tls_flags(pki.client)
    docker_cli(manager.port, home, "run", "-d", "--name", "tls-hello", "busybox",
               "sh", "-c", "echo hello over tls; sleep 300", flags=flags)
    try:
        names = docker_cli(manager.port, home, "ps", "--format", "{{.Names}}",
                           flags=flags).stdout.decode().split()
        assert any(n.endswith("/tls-hello") for n in names), names
        wait_for(lambda: b"hello over tls" in docker_cli(
            manager.port, home, "logs", "tls-hello", flags=flags).stdout, 15, "logs")
    finally:
        docker_cli(manager.port, home, "rm", "-f", "tls-hello", flags=flags)
    names = docker_cli(manager.port, home, "ps", "-a", "--format", "{{.Names}}",
                       flags=flags).stdout.decode().split()
    assert not any(n.endswith("/tls-hello") for n in names)


def test_attached_run_and_exec_keep_their_output_after_the_client_half_closes(cluster, pki):
    """The CLI ends its input with CloseWrite (close_notify on TLS) and keeps reading:
    output that comes after must still arrive, as with dockerd."""
    manager, _, folder = cluster
    home, flags = folder / "home", tls_flags(pki.client)
    done = docker_cli(manager.port, home, "run", "--rm", "busybox", "sh", "-c",
                      "sleep 1; echo late output over tls; exit 3", flags=flags, check=False)
    assert done.returncode == 3, done.stderr
    assert b"late output over tls" in done.stdout
    piped = docker_cli(manager.port, home, "run", "--rm", "-i", "busybox", "sh", "-c",
                       "cat; sleep 1; echo after stdin ended", flags=flags, check=False,
                       stdin=b"from stdin\n")
    assert piped.stdout == b"from stdin\nafter stdin ended\n", piped.stderr


# ------------------------------------------------------------------ the agent link
async def _heartbeat(addr: str, ident: certs.Identity | None):
    client = AgentClient(addr, certs.grpc_channel_credentials(ident) if ident else None)
    try:
        return await client.heartbeat(timeout=5)
    finally:
        await client.close()


def test_the_agent_answers_only_managers_of_its_ca(cluster, pki):
    _, agents, _ = cluster
    addr = agents[0].addr
    manager = certs.load_identity(pki.manager, role="manager")
    assert asyncio.run(_heartbeat(addr, manager)).id
    with pytest.raises(AgentUnavailable, match=f"Cannot reach agent {addr}"):
        asyncio.run(_heartbeat(addr, None))  # plaintext
    stranger = certs.load_identity(pki.stranger_manager, role="manager")
    # Trusting the agent's CA, but showing a manager cert of another CA: refused.
    with pytest.raises(AgentUnavailable, match="does not accept this manager's certificate"):
        asyncio.run(_heartbeat(addr, dataclasses.replace(stranger, ca_pem=manager.ca_pem)))
    # Trusting only the other CA: the manager refuses the agent's cert.
    with pytest.raises(AgentUnavailable, match="not signed by this manager's CA"):
        asyncio.run(_heartbeat(addr, stranger))
    admin = certs.load_identity(pki.client, role="admin")
    with pytest.raises(AgentError, match="PERMISSION_DENIED: this agent answers only "
                                         "clients with the manager role"):
        asyncio.run(_heartbeat(addr, admin))


async def _over_link(addr: str, ident: certs.Identity | None,
                     link: agent_pb2.NodeInfo | None = None):
    """GET /info through an AgentClient showing `ident` on gRPC and on the call link
    (named by `link`, else by the agent's own Info): (answer or error, link)."""
    client = AgentClient(addr, certs.grpc_channel_credentials(ident) if ident else None,
                         stream_slots=StreamSlots(),
                         link_tls=certs.client_ssl_context(ident) if ident else None)
    try:
        if link is None:
            await client.info()
        else:
            client.stub  # noqa: B018 - the call stream exists once the channel does
            client._note_link(link)
        answer = None
        for _ in range(2):  # the first call opens the link beside the gRPC stream
            try:
                answer = (await client.request_json("GET", "/info"))[1]
            except AgentError as exc:
                answer = exc
            for _ in range(500):
                if client.calls_carrier == "link" or client.call_link.why:
                    break
                await asyncio.sleep(0.01)
        return answer, client.call_link, client.calls_carrier
    finally:
        await client.close()


def test_the_call_link_answers_only_managers_of_its_ca(cluster, pki):
    _, agents, _ = cluster
    addr = agents[0].addr
    manager = certs.load_identity(pki.manager, role="manager")
    answer, link, carrier = asyncio.run(_over_link(addr, manager))
    assert answer["Name"] and carrier == "link" and link.why == ""
    assert link.address.startswith("127.0.0.1:") and link.address != addr
    named = agent_pb2.NodeInfo(id=link.node_id, calls_address=link.address)
    # An admin's cert of the same CA: the link says no, and gRPC refuses the call.
    admin = certs.load_identity(pki.client, role="admin")
    answer, link, carrier = asyncio.run(_over_link(addr, admin, named))
    assert link.why == "this agent answers only clients with the manager role"
    assert isinstance(answer, AgentError) and "PERMISSION_DENIED" in str(answer)
    # A manager cert of another CA (trusting ours): the handshake fails, nothing is sent.
    stranger = certs.load_identity(pki.stranger_manager, role="manager")
    answer, link, carrier = asyncio.run(_over_link(
        addr, dataclasses.replace(stranger, ca_pem=manager.ca_pem), named))
    assert not link.usable() and link.why
    assert isinstance(answer, AgentUnavailable)
    # Plaintext to the TLS link: it never opens.
    answer, link, carrier = asyncio.run(_over_link(addr, None, named))
    assert not link.usable() and link.why
    assert isinstance(answer, AgentUnavailable)


async def _first_event(addr: str, ident: certs.Identity):
    client = AgentClient(addr, certs.grpc_channel_credentials(ident))
    try:
        async for event in client.events():
            return event
    finally:
        await client.close()


def test_streams_are_guarded_too(cluster, pki):
    _, agents, _ = cluster
    admin = certs.load_identity(pki.client, role="admin")
    with pytest.raises(AgentError, match="PERMISSION_DENIED"):
        asyncio.run(_first_event(agents[0].addr, admin))


def test_a_plaintext_agent_is_named_as_such(pki):
    async def run() -> None:
        port = free_port()
        server, _ = make_server(AgentService(None, f"127.0.0.1:{port}"), f"127.0.0.1:{port}")
        await server.start()
        try:
            await _heartbeat(f"127.0.0.1:{port}", certs.load_identity(pki.manager))
        finally:
            await server.stop(0)

    with pytest.raises(AgentUnavailable, match="the agent does not speak TLS"):
        asyncio.run(run())


def test_the_manager_checks_the_agents_name_against_the_address_dialled(cluster, pki):
    _, agents, _ = cluster
    manager = certs.load_identity(pki.manager, role="manager")
    with pytest.raises(AgentUnavailable, match="does not name the address"):
        asyncio.run(_heartbeat(f"localhost:{agents[0].port}", manager))


# ------------------------------------------------------------------ --tls alone
def test_tls_without_verify_encrypts_without_client_certs(pki, tmp_path, sdk_env):
    manager = Manager("tls-only", tmp_path, "nodes://127.0.0.1:1", extra=[
        "--tls", f"--tlscert={pki.manager.cert}", f"--tlskey={pki.manager.key}"]).start()
    try:
        flags = ["--tls", f"--tlscacert={pki.manager.ca}"]
        wait_for(lambda: docker_cli(manager.port, tmp_path / "home", "version", flags=flags,
                                    check=False).returncode == 0, 20, "the --tls manager")
        warnings = json.loads(docker_cli(manager.port, tmp_path / "home", "info", "--format",
                                         "{{json .Warnings}}", flags=flags).stdout)
        assert any("--tls without --tlsverify" in w for w in warnings), warnings
        assert docker_cli(manager.port, tmp_path / "home", "version",
                          check=False).returncode != 0  # plaintext still refused
        tls = docker.tls.TLSConfig(ca_cert=pki.manager.ca, verify=pki.manager.ca)
        client = docker.DockerClient(base_url=f"tcp://127.0.0.1:{manager.port}", tls=tls)
        assert client.version()["Version"].startswith("swarm/1.2.9 flock/")
        client.close()
    finally:
        manager.stop()
    OUTPUTS.append(manager.output())


# ------------------------------------------------------------------ bad input at start
def run_flock(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "flock", *args], capture_output=True,
                          timeout=60, cwd=REPO, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    OUTPUTS.append(proc.stdout + proc.stderr)
    return proc


def start_with(program: str, files: TLSFiles, tmp_path: pathlib.Path
               ) -> subprocess.CompletedProcess:
    port = free_port()
    if program == "manage":
        return run_flock("manage", "-H", f"tcp://127.0.0.1:{port}", *tls_flags(files),
                         "nodes://127.0.0.1:1")
    return run_flock("join", "--advertise", f"127.0.0.1:{port}", "--runtime", "exec",
                     "--state-dir", str(tmp_path / "state"), *tls_flags(files))


BAD_FILES = {
    "expired": (lambda p: p.expired, lambda p: p.expired.cert, "the certificate expired on"),
    "wrong host": (lambda p: p.wrong_host, lambda p: p.wrong_host.cert,
                   "is for 10.255.0.1, not for 127.0.0.1"),
    "missing key": (lambda p: dataclasses.replace(p.manager, key=p.manager.key + ".gone"),
                    lambda p: p.manager.key + ".gone", "no such file (the private key)"),
    "mismatched key": (lambda p: dataclasses.replace(p.manager, key=p.agent.key),
                       lambda p: p.agent.key,
                       "the private key does not match the certificate"),
    "another CA": (lambda p: dataclasses.replace(p.stranger_manager, ca=p.manager.ca),
                   lambda p: p.stranger_manager.cert, "not signed by the CA in"),
}


@pytest.mark.parametrize("program", ["manage", "join"])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_cert_files_stop_the_start_with_a_clear_message(pki, tmp_path, program, case):
    files, named, problem = BAD_FILES[case]
    proc = start_with(program, files(pki), tmp_path)
    assert proc.returncode != 0
    assert f"flock {program}: error: {named(pki)}" in proc.stderr and problem in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_plaintext_on_a_reachable_address_needs_insecure(tmp_path):
    port = free_port()
    proc = run_flock("manage", "-H", f"tcp://0.0.0.0:{port}", "nodes://127.0.0.1:1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (f"refusing to listen on tcp://0.0.0.0:{port} (-H) without TLS" in proc.stderr
            and "--insecure" in proc.stderr)
    proc = run_flock("join", "--advertise", f"10.255.0.1:{port}", "--runtime", "exec",
                     "--state-dir", str(tmp_path / "s"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"refusing to listen on 10.255.0.1:{port} (--advertise) without TLS" in proc.stderr
    assert "Add --tlsverify --tlscacert --tlscert --tlskey" in proc.stderr
    proc = run_flock("join", "--advertise", f"127.0.0.1:{port}", "--listen", f"0.0.0.0:{port}",
                     "--runtime", "exec", "--state-dir", str(tmp_path / "s"))
    assert proc.returncode == 2 and f"0.0.0.0:{port} (--listen) without TLS" in proc.stderr


def test_insecure_serves_plaintext_and_says_so(tmp_path):
    port = free_port()
    manager = Manager("insecure", tmp_path, "nodes://127.0.0.1:1", extra=[
        "-H", f"tcp://0.0.0.0:{port}", "--insecure"]).start()
    try:
        def warnings() -> list[str]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=5) as a:
                    return json.loads(a.read())["Warnings"]
            except OSError:
                return []
        found = wait_for(lambda: [w for w in warnings() if "(--insecure)" in w], 20, "warning")
        assert found == [f"the Docker API on tcp://0.0.0.0:{port} has no TLS (--insecure): "
                         "anyone who can reach it controls every node"]
    finally:
        manager.stop()
    assert f"WARNING flock.manager: the Docker API on tcp://0.0.0.0:{port} has no TLS" in \
        manager.output()


def test_cert_flags_without_tls_are_refused_rather_than_ignored(pki):
    args = build_parser().parse_args(["manage", "--tlscert", pki.manager.cert, "nodes://a:1"])
    with pytest.raises(ConfigError, match="given without --tlsverify or --tls"):
        config_from_args(args)
    args = build_parser().parse_args(["join", "--advertise", "127.0.0.1:4000",
                                      "--tlscert", pki.agent.cert])
    with pytest.raises(JoinError, match="given without --tlsverify"):
        load_tls(args, args.advertise, args.advertise)


def test_manager_tls_flags_default_the_agent_link_to_the_fronts_files(pki):
    args = build_parser().parse_args(["manage", *tls_flags(pki.manager), "nodes://a:1"])
    config = config_from_args(args)
    assert config.tlsverify and config.agent_tls_files == pki.manager
    args = build_parser().parse_args(["manage", "nodes://a:1"])
    assert config_from_args(args).agent_tls_files is None


# ------------------------------------------------------------------ secrets
def test_no_key_material_in_any_output(cluster, pki):
    """Runs last: every CLI output and every program log of this module."""
    _, _, folder = cluster
    logs = [p.read_text(errors="replace") for p in folder.glob("*.log")]
    haystack = "\n".join(OUTPUTS + logs)
    assert "BEGIN PRIVATE KEY" not in haystack
    for key in pki.keys():
        for line in pathlib.Path(key).read_text().splitlines():
            if not line.startswith("-----"):
                assert line not in haystack, f"a line of {key} appears in the output"


# ------------------------------------------------------------------ replicated managers


@pytest.mark.skipif(not have_etcd(), reason="etcd is not installed")
def test_a_replica_forwards_writes_to_a_tls_primary(pki, tmp_path):
    """Replicas forward writes to the primary's front, which speaks TLS and verifies
    client certs: the replica presents its own manager cert."""
    etcd = Etcd(tmp_path / "etcd").start()
    url = etcd.url("/tls-ha")
    agent = Agent("n1", tmp_path, url, extra=tls_flags(pki.agent)).start()
    managers = []
    for name in ("m1", "m2"):
        manager = Manager(name, tmp_path, url,
                          extra=[*tls_flags(pki.manager), "--replication",
                                 "--replication-ttl", "3s"])
        manager.args[1:1] = ["--advertise", f"127.0.0.1:{manager.port}"]
        managers.append(manager.start())
    home, flags = tmp_path / "home", tls_flags(pki.client)
    try:
        def roles() -> dict[int, str]:
            found = {}
            for m in managers:
                rows = dict(https_info(m.port, pki.client).get("SystemStatus") or [])
                found[m.port] = rows.get("Role", "")
            return found

        wait_for(lambda: sorted(roles().values()) == ["primary", "replica"], 30,
                 "one primary and one replica")
        replica = next(port for port, role in roles().items() if role == "replica")
        wait_for(lambda: all(healthy(https_info(m.port, pki.client)) == 1 for m in managers),
                 30, "both managers to see the node")
        docker_cli(replica, home, "import", "-", "busybox:latest", flags=flags,
                   stdin=busybox_rootfs_tar())
        docker_cli(replica, home, "run", "-d", "--name", "via-replica", "busybox",
                   "sleep", "300", flags=flags)
        for m in managers:
            wait_for(lambda m=m: "n1/via-replica" in docker_cli(
                m.port, home, "ps", "--format", "{{.Names}}", flags=flags).stdout.decode(),
                15, "the container in every manager's view")
        docker_cli(replica, home, "rm", "-f", "via-replica", flags=flags)
    finally:
        for m in managers:
            m.stop()
        agent.cleanup()
        etcd.stop()
