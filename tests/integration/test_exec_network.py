"""Networking of the exec runtime (issue 18, item 3), with the real docker CLI and SDK:
a bridge of the runtime's own (named after its engine ID, a free subnet: two suite runs
never share one), published ports through the userspace proxy, names between containers,
host and none modes, the Engine's shapes and errors, and nothing left behind."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import subprocess
import time
import urllib.request

import docker
import pytest

from flock.agent.runtimes.exec import isolation, nat, proxy
from flock.local_cluster import LocalCluster
from tests.conftest import free_port
from tests.support.exec_network import bridge_of, leftovers
from tests.support.exec_runtime import RuntimeProcess, raw, running_runtime

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(os.geteuid() != 0 or not isolation.probe(),
                                 reason="container networks need root and namespaces")]
HTTPD = ["busybox", "httpd", "-f", "-p", "80", "-h", "/www"]


def serve(rt: RuntimeProcess, name: str, *options: str, text: str = "hi") -> str:
    """A busybox httpd serving `text` at /index.html."""
    return rt.out("run", "-d", "--name", name, *options, "busybox", "sh", "-c",
                  f"mkdir -p /www && echo {text} > /www/index.html && exec {' '.join(HTTPD)}")


def fetch(port: int, host: str = "127.0.0.1", timeout: float = 15) -> str:
    """GET / from the host, retried while the server inside comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/", timeout=5) as answer:
                return answer.read().decode().strip()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def in_container(rt: RuntimeProcess, name: str, script: str) -> str:
    return rt.docker("exec", name, "sh", "-c", script, check=False).stdout.decode().strip()


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    with running_runtime(tmp_path_factory.mktemp("exec-net")) as runtime:
        runtime.import_busybox("busybox:latest", "EXPOSE 443")
        yield runtime
    assert leftovers(runtime.state_dir) == []


@pytest.fixture
def names(rt):
    made: list[str] = []
    yield made
    if made:
        rt.docker("rm", "-f", *made, check=False)


def test_published_port_answers_on_the_host(rt, names):
    port = free_port()
    names.append("web")
    serve(rt, "web", "-p", f"{port}:80", text="from-exec")
    assert fetch(port) == "from-exec"
    # -p CTR: a host port chosen by the kernel, shown by `docker port`.
    names.append("anyport")
    serve(rt, "anyport", "-p", "80", text="any")
    shown = rt.out("port", "anyport", "80")
    host, _, chosen = shown.splitlines()[0].rpartition(":")
    assert host == "0.0.0.0" and fetch(int(chosen)) == "any"


def test_udp_port_is_held_and_relayed(rt, names):
    """busybox here has no UDP server, so the relay is checked against a host echo
    server, and the published port against the runtime holding it."""
    port = free_port()
    names.append("udp")
    rt.out("run", "-d", "--name", "udp", "-p", f"127.0.0.1:{port}:7000/udp", "busybox",
           "sleep", "300")
    assert rt.out("port", "udp") == f"7000/udp -> 127.0.0.1:{port}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        with pytest.raises(OSError):
            probe.bind(("127.0.0.1", port))
    assert asyncio.run(_udp_round_trip()) == [b"one", b"two"]


async def _udp_round_trip() -> list[bytes]:
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    relay = proxy.UdpProxy(echo.get_extra_info("sockname"))
    port = await relay.open("127.0.0.1", 0)
    got: asyncio.Queue = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            got.put_nowait(data)

    client, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    try:
        answers = []
        for word in (b"one", b"two"):
            client.sendto(word)
            answers.append(await asyncio.wait_for(got.get(), 10))
        return answers
    finally:
        client.close()
        await relay.close()
        echo.close()


def test_containers_reach_each_other_by_name(rt, names):
    names += ["client", "server"]
    # The client starts first: its /etc/hosts learns the server's name when that starts.
    rt.out("run", "-d", "--name", "client", "busybox", "sleep", "300")
    serve(rt, "server", text="by-name")
    deadline = time.monotonic() + 15
    while (got := in_container(rt, "client", "wget -qO- http://server/")) != "by-name":
        assert time.monotonic() < deadline, got
        time.sleep(0.3)
    assert in_container(rt, "server", "ping -c1 -W2 client >/dev/null && echo ok") == "ok"


def test_add_host_and_dns_options(rt):
    out = rt.out("run", "--rm", "--add-host", "db.local:10.1.2.3", "--dns", "10.9.9.9",
                 "--dns-search", "example.test", "busybox", "sh", "-c",
                 "cat /etc/hosts /etc/resolv.conf; hostname")
    lines = out.splitlines()
    assert "10.1.2.3\tdb.local" in lines
    assert "nameserver 10.9.9.9" in lines and "search example.test" in lines
    assert not [line for line in lines if line.startswith("nameserver 127.")]


def test_outbound_traffic_leaves_through_nat(rt, names):
    """The container reaches the host's own address through the bridge's gateway, and
    what leaves for other hosts is masqueraded (the rule; no outside host here)."""
    with socket.socket() as listener:
        listener.bind(("0.0.0.0", 0))
        listener.listen()
        port = listener.getsockname()[1]
        host_ip = _host_address()
        names.append("out")
        rt.out("run", "-d", "--name", "out", "busybox", "sh", "-c",
               f"echo hello | nc {host_ip} {port}; sleep 300")
        listener.settimeout(15)
        conn, peer = listener.accept()
        with conn:
            assert conn.recv(100) == b"hello\n"
    subnet = ipaddress.ip_network(json.loads(
        (rt.state_dir / "network.json").read_text())["subnet"])
    assert ipaddress.ip_address(peer[0]) in subnet  # local delivery: not masqueraded
    rules = nat.present(bridge_of(rt.state_dir))
    assert any(f"-s {subnet}" in r and "MASQUERADE" in r for r in rules), rules


def _host_address() -> str:
    for line in subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True,
                               text=True).stdout.splitlines():
        words = line.split()
        if words[1] not in ("lo",) and not words[1].startswith(("flock", "br-", "docker")):
            return words[3].split("/")[0]
    pytest.skip("no host address outside the bridges")


def test_host_and_none_modes(rt):
    host_view = rt.out("run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev")
    bridge = bridge_of(rt.state_dir)
    assert f"{bridge}:" in host_view and "lo:" in host_view
    none_view = rt.out("run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev")
    interfaces = {line.split(":")[0].strip() for line in none_view.splitlines()[2:]}
    assert interfaces == {"lo"}
    bridged = rt.out("run", "--rm", "busybox", "cat", "/proc/net/dev")
    assert {line.split(":")[0].strip() for line in bridged.splitlines()[2:]} == {"lo", "eth0"}


def test_inspect_port_and_ps_shapes(rt, names):
    port = free_port()
    names.append("shapes")
    serve(rt, "shapes", "-p", f"{port}:80", "--expose", "9000")
    data = json.loads(rt.out("inspect", "shapes"))[0]
    settings = data["NetworkSettings"]
    subnet = ipaddress.ip_network(json.loads(
        (rt.state_dir / "network.json").read_text())["subnet"])
    address = ipaddress.ip_address(settings["IPAddress"])
    assert address in subnet and settings["IPPrefixLen"] == subnet.prefixlen
    assert settings["Gateway"] == str(next(subnet.hosts()))
    # moby: the MAC of a bridge endpoint is 02:42 + the IPv4 address.
    assert settings["MacAddress"] == "02:42:" + ":".join(f"{b:02x}" for b in address.packed)
    network = settings["Networks"]["bridge"]
    assert (network["IPAddress"], network["Gateway"], network["MacAddress"]) == (
        settings["IPAddress"], settings["Gateway"], settings["MacAddress"])
    assert network["EndpointID"] == settings["EndpointID"] and len(network["NetworkID"]) == 64
    # Exposed (image EXPOSE 443, --expose 9000) but unpublished ports are null.
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}],
                                 "443/tcp": None, "9000/tcp": None}
    assert rt.out("port", "shapes") == f"80/tcp -> 0.0.0.0:{port}"
    shown = rt.out("ps", "--filter", "name=shapes", "--format", "{{.Ports}}")
    assert f"0.0.0.0:{port}->80/tcp" in shown and "443/tcp" in shown
    sdk = docker.DockerClient(base_url=rt.url, version="1.41", timeout=30)
    try:
        assert sdk.containers.get("shapes").ports["80/tcp"] == [
            {"HostIp": "0.0.0.0", "HostPort": str(port)}]
    finally:
        sdk.close()
    rt.out("stop", "-t", "1", "shapes")
    stopped = json.loads(rt.out("inspect", "shapes"))[0]["NetworkSettings"]
    assert (stopped["IPAddress"], stopped["Ports"]) == ("", {})


def test_published_all_exposed_ports(rt, names):
    names.append("all")
    rt.out("run", "-d", "--name", "all", "-P", "busybox", "sleep", "300")
    ports = json.loads(rt.out("inspect", "all"))[0]["NetworkSettings"]["Ports"]
    assert list(ports) == ["443/tcp"] and int(ports["443/tcp"][0]["HostPort"]) > 0


def test_taken_host_port_is_refused(rt, names):
    port = free_port()
    names += ["first", "second", "third"]
    serve(rt, "first", "-p", f"{port}:80")
    second = rt.docker("run", "-d", "--name", "second", "-p", f"{port}:80", "busybox",
                       "sleep", "300", check=False)
    # moby (libnetwork/portallocator): "Bind for 0.0.0.0:%d failed: port is already
    # allocated", wrapped in "driver failed programming external connectivity on endpoint".
    err = second.stderr.decode()
    assert second.returncode != 0
    assert "driver failed programming external connectivity on endpoint second (" in err
    assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in err
    assert rt.out("inspect", "-f", "{{.State.Status}}", "second") == "created"
    with socket.socket() as holder:  # a port another program of the host holds
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        held = holder.getsockname()[1]
        third = rt.docker("run", "-d", "--name", "third", "-p", f"{held}:80", "busybox",
                          "sleep", "300", check=False)
    assert (f"Error starting userland proxy: listen tcp4 0.0.0.0:{held}: bind: address "
            f"already in use") in third.stderr.decode()
    # The failed starts left nothing behind: only the first container's veth is there.
    assert len(_veths(rt)) == 1
    assert fetch(port) == "hi"


def test_bad_specs_are_refused(rt):
    for bindings, message in (({"abc/tcp": [{"HostPort": "1"}]}, "invalid containerPort: abc"),
                              ({"80/tcp": [{"HostPort": "99999"}]}, "invalid hostPort: 99999"),
                              ({"80/icmp": []}, "invalid proto: icmp")):
        body = json.dumps({"Image": "busybox", "Cmd": ["true"],
                           "HostConfig": {"PortBindings": bindings}}).encode()
        status, _, answer = _post(rt, "/containers/create", body)
        assert (status, json.loads(answer)["message"]) == (400, message)
    for host_config in ({"NetworkMode": "container:x"}, {"Links": ["/a:/b/a"]},
                        {"NetworkMode": "host", "ExtraHosts": ["a:10.0.0.1"]}):
        body = json.dumps({"Image": "busybox", "Cmd": ["true"],
                           "HostConfig": host_config}).encode()
        assert _post(rt, "/containers/create", body)[0] == 501, host_config
    body = json.dumps({"Image": "busybox", "Cmd": ["true"],
                       "HostConfig": {"ExtraHosts": ["nocolon"]}}).encode()
    assert _post(rt, "/containers/create", body)[0] == 400
    # As dockerd: an unknown network passes create and fails the start, 404.
    proc = rt.docker("run", "-d", "--network", "nonet", "busybox", "true", check=False)
    assert proc.returncode != 0 and "network nonet not found" in proc.stderr.decode()
    for cid in rt.out("ps", "-aq", "--filter", "status=created").split():
        rt.docker("rm", cid, check=False)


def _post(rt: RuntimeProcess, path: str, body: bytes):
    return raw(rt.socket, "POST", path, body)


def _veths(rt: RuntimeProcess) -> list[str]:
    bridge = bridge_of(rt.state_dir)
    return os.listdir(f"/sys/class/net/{bridge}/brif")


def test_removal_frees_address_veth_and_port(rt, names):
    port = free_port()
    before = set(_veths(rt))
    cid = serve(rt, "gone", "-p", f"{port}:80")
    first = json.loads(rt.out("inspect", "gone"))[0]["NetworkSettings"]["IPAddress"]
    (veth,) = set(_veths(rt)) - before
    rt.out("rm", "-f", "gone")
    deadline = time.monotonic() + 10
    while veth in _veths(rt):
        assert time.monotonic() < deadline, _veths(rt)
        time.sleep(0.1)
    assert not os.path.exists(f"/run/netns/flk-{cid[:12]}")
    # The port and the address are free again.
    names.append("again")
    serve(rt, "again", "-p", f"{port}:80", text="again")
    assert fetch(port) == "again"
    assert json.loads(rt.out("inspect", "again"))[0]["NetworkSettings"]["IPAddress"] == first


def test_restarted_runtime_serves_ports_again(tmp_path):
    runtime = RuntimeProcess(tmp_path)
    runtime.start()
    try:
        runtime.import_busybox()
        port = free_port()
        serve(runtime, "kept", "-p", f"{port}:80", text="kept")
        runtime.out("run", "-d", "--name", "dies", "busybox", "sleep", "300")
        assert fetch(port) == "kept"
        runtime.stop()  # containers keep running; the proxy goes with the runtime
        dies = json.loads((tmp_path / "containers").joinpath(
            _cid(tmp_path, "dies"), "state.json").read_text())
        os.kill(dies["Pid"], 9)
        runtime.start()
        assert fetch(port) == "kept"
        assert runtime.out("inspect", "-f", "{{.State.Status}}", "dies") == "exited"
        assert len(_veths(runtime)) == 1  # the killed container's veth went with it
        runtime.docker("rm", "-f", "kept", "dies")
        runtime.stop()
        assert leftovers(tmp_path) == []
    finally:
        runtime.stop()
        runtime.cleanup()


def _cid(state_dir, name: str) -> str:
    for folder in (state_dir / "containers").iterdir():
        if json.loads((folder / "config.json").read_text())["name"] == name:
            return folder.name
    raise KeyError(name)


def test_port_filter_sees_exec_ports_through_the_manager(tmp_path):
    """classic Swarm's port filter: a second `-p PORT:80` goes to the other node, a third
    finds none (manager/scheduler/filters/port.py)."""
    from flock.demo import import_image

    port = free_port()
    with LocalCluster(agents=2, runtime="exec", state_dir=tmp_path / "cluster") as cluster:
        import_image(cluster)

        def docker_(*args: str, check: bool = True):
            return subprocess.run(["docker", "-H", cluster.url, *args], capture_output=True,
                                  timeout=60, check=check)

        try:
            # Both agents run on this machine: each publishes on its own loopback address.
            for name, address in (("p1", "127.0.0.1"), ("p2", "127.0.0.2")):
                docker_("run", "-d", "--name", name, "-p", f"{address}:{port}:80", "busybox",
                        "sh",
                        "-c", f"mkdir /www; echo {name} > /www/index.html; "
                              f"exec {' '.join(HTTPD)}")
            nodes = {json.loads(docker_("inspect", n).stdout)[0]["Node"]["Name"]
                     for n in ("p1", "p2")}
            assert len(nodes) == 2
            third = docker_("run", "-d", "--name", "p3", "-p", f"127.0.0.3:{port}:80", "busybox",
                            "true", check=False)
            assert third.returncode != 0 and f"port {port}" in third.stderr.decode()
            assert (fetch(port, "127.0.0.1"), fetch(port, "127.0.0.2")) == ("p1", "p2")
        finally:
            docker_("rm", "-f", "p1", "p2", check=False)
        agent_dirs = [p for p in (tmp_path / "cluster").iterdir() if p.is_dir()]
    for folder in agent_dirs:
        assert leftovers(folder) == []
