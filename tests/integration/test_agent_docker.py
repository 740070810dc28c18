"""Both ends of the Agent protocol against a real Docker Engine: the agent's gRPC
service in-process with the docker runtime, the manager's AgentClient talking to it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import types

import grpc
import pytest

from flock.agent.runtimes import make_runtime
from flock.agent.runtimes.base import RuntimeUnavailable
from flock.agent.runtimes.docker import DockerRuntime, engine_answers
from flock.agent.server import AgentService, make_server
from flock.docker_compat.stdcopy import demux
from flock.manager.cluster.agent_client import AgentClient, AgentError, AgentUnavailable
from flock.protos import agent_pb2
from tests.conftest import free_port

pytestmark = pytest.mark.docker
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def agent(engine):
    """An agent served in-process on a module-wide event loop, and a client for it."""
    loop = asyncio.new_event_loop()
    addr = f"127.0.0.1:{free_port()}"
    runtime = DockerRuntime(engine.url)
    loop.run_until_complete(runtime.start())

    async def serve():
        server, _ = make_server(AgentService(runtime, addr, labels={"zone": "a"}), addr)
        await server.start()
        return server

    server = loop.run_until_complete(serve())
    client = AgentClient(addr)
    made: list[str] = []
    yield types.SimpleNamespace(client=client, addr=addr, run=loop.run_until_complete,
                                made=made, engine=engine)
    for cid in made:
        loop.run_until_complete(client.request_json("DELETE", f"/containers/{cid}", "force=1"))
    loop.run_until_complete(client.close())
    loop.run_until_complete(server.stop(0))
    loop.close()


async def create(agent, cmd: list[str], **extra) -> str:
    status, answer = await agent.client.request_json(
        "POST", "/containers/create", body={"Image": "busybox:latest", "Cmd": cmd, **extra})
    assert status == 201, answer
    agent.made.append(answer["Id"])
    return answer["Id"]


async def start(agent, cid: str) -> None:
    status, answer = await agent.client.request_json("POST", f"/containers/{cid}/start")
    assert status == 204, answer


def test_info_reports_the_engine(agent):
    facts = json.loads(agent.engine.docker("info", "--format", "{{json .}}").stdout)
    info = agent.run(agent.client.info())
    assert info.id == facts["ID"] and info.name == facts["Name"]
    assert info.cpus == facts["NCPU"] and info.memory == facts["MemTotal"]
    assert info.address == agent.addr and info.runtime == "docker"
    assert info.labels["storagedriver"] == facts["Driver"]
    assert info.labels["kernelversion"] == facts["KernelVersion"]
    assert info.labels["operatingsystem"] == facts["OperatingSystem"]
    assert info.labels["ostype"] == "linux" and info.labels["runtime"] == "docker"
    assert info.labels["zone"] == "a"
    assert info.api_version == "1.41" and info.server_version == facts["ServerVersion"]
    assert info.images >= 1
    assert json.loads(info.engine_info)["ID"] == facts["ID"]


def test_heartbeat(agent):
    reply = agent.run(agent.client.heartbeat())
    assert reply.id == agent.run(agent.client.info()).id
    assert abs(reply.time - time.time()) < 5 and reply.images >= 1


def test_plain_requests(agent):
    status, listing = agent.run(agent.client.request_json("GET", "/containers/json", "all=1"))
    assert status == 200 and isinstance(listing, list)
    exchange = agent.run(agent.client.request("GET", "/_ping", api_version="1.41"))
    assert exchange.status == 200 and exchange.header("Api-Version") == "1.41"
    assert agent.run(exchange.body()) == b"OK"
    exchange = agent.run(agent.client.request("HEAD", "/_ping"))
    assert exchange.status == 200 and agent.run(exchange.body()) == b""
    status, answer = agent.run(agent.client.request_json("GET", "/containers/nope/json"))
    assert status == 404 and "nope" in answer["message"]


def test_run_logs_wait_and_events(agent):
    async def scenario():
        seen: list[dict] = []

        async def watch(cid_box):
            async for event in agent.client.events():
                seen.append(event)
                if event.get("status") == "die" and event.get("id") == cid_box[0]:
                    return

        box = [""]
        began = time.time()
        watcher = asyncio.create_task(watch(box))
        await asyncio.sleep(0.3)  # the subscription is open before the container exists
        cid = box[0] = await create(agent, ["sh", "-c", "echo out; echo err >&2"])
        await start(agent, cid)
        status, result = await agent.client.request_json("POST", f"/containers/{cid}/wait")
        assert status == 200 and result["StatusCode"] == 0
        logs = await agent.client.request("GET", f"/containers/{cid}/logs", "stdout=1&stderr=1")
        assert logs.status == 200
        assert sorted(demux(await logs.body())) == [(1, b"out\n"), (2, b"err\n")]
        await asyncio.wait_for(watcher, 10)
        mine = [e["status"] for e in seen if e.get("id") == cid]
        assert mine[:3] == ["create", "start", "die"]
        replay = agent.client.events(since=began)
        async for event in replay:  # `since` replays what happened before subscribing
            if event.get("id") == cid:
                assert event["status"] == "create"
                break
        await replay.aclose()

    agent.run(scenario())


def test_logs_follow_streams_lines_as_they_come(agent):
    async def scenario():
        cid = await create(agent, ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.6; done"])
        await start(agent, cid)
        logs = await agent.client.request(
            "GET", f"/containers/{cid}/logs", "follow=1&stdout=1&stderr=1")
        arrivals = []
        async for chunk in logs:
            arrivals += [(time.monotonic(), payload) for _, payload in demux(chunk)]
        assert [p for _, p in arrivals] == [b"line1\n", b"line2\n", b"line3\n"]
        assert arrivals[-1][0] - arrivals[0][0] > 0.8  # streamed, not buffered to the end

    agent.run(scenario())


def test_hijacked_attach_to_cat(agent):
    async def scenario():
        cid = await create(agent, ["cat"], OpenStdin=True, StdinOnce=True, AttachStdin=True,
                           AttachStdout=True, AttachStderr=True)
        attach = await agent.client.request(
            "POST", f"/containers/{cid}/attach", "stream=1&stdin=1&stdout=1&stderr=1",
            hijack=True)
        assert attach.status == 101
        await start(agent, cid)
        await attach.write(b"hello flock\n")
        got = b""
        while b"hello flock\n" not in b"".join(p for _, p in demux(got)):
            chunk = await asyncio.wait_for(attach.read(), 10)
            assert chunk is not None
            got += chunk
        await attach.close_write()
        assert await asyncio.wait_for(attach.body(), 10) == b""  # cat exits, stream ends
        status, result = await agent.client.request_json("POST", f"/containers/{cid}/wait")
        assert status == 200 and result["StatusCode"] == 0

    agent.run(scenario())


def big_tar(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_large_body_goes_through(agent, streamed):
    data = big_tar(5 << 20)
    repo = f"big{int(streamed)}"

    async def pieces():
        for i in range(0, len(data), 300_000):
            yield data[i:i + 300_000]

    async def scenario():
        body = pieces() if streamed else data
        exchange = await agent.client.request(
            "POST", "/images/create", f"fromSrc=-&repo={repo}&tag=latest", body=body)
        progress = await exchange.body()
        assert exchange.status == 200, progress
        status, image = await agent.client.request_json("GET", f"/images/{repo}:latest/json")
        assert status == 200 and image["Size"] >= 5 << 20
        await agent.client.request_json("DELETE", f"/images/{repo}:latest")

    agent.run(scenario())


def test_agent_keeps_serving_after_a_client_cancels(agent):
    async def scenario():
        cid = await create(agent, ["sh", "-c", "while true; do echo tick; sleep 0.1; done"])
        await start(agent, cid)
        before = len(os.listdir("/proc/self/fd"))
        for _ in range(3):
            logs = await agent.client.request(
                "GET", f"/containers/{cid}/logs", "follow=1&stdout=1")
            assert await asyncio.wait_for(logs.read(), 5)
            logs.cancel()
            assert await logs.read() is None
        await asyncio.sleep(0.5)
        # The agent closed its runtime connections (the engine stops following).
        assert len(os.listdir("/proc/self/fd")) < before + 3
        status, _ = await agent.client.request_json("GET", "/containers/json")
        assert status == 200
        assert (await agent.client.heartbeat()).id

    agent.run(scenario())


def test_malformed_exchanges_are_refused(agent):
    async def scenario():
        with pytest.raises(AgentError, match="must start with '/'"):
            await agent.client.request("GET", "containers/json")
        with pytest.raises(AgentError, match="whitespace"):
            await agent.client.request("GET", "/containers/json", "a=1 HTTP/1.0\r\n")
        call = agent.client.stub.Docker()
        await call.write(agent_pb2.DockerFrame(data=b"no request"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(TypeError):
            await agent.client.request("POST", "/exec/x/start", body=aiter_of(b"{}"),
                                       hijack=True)

    agent.run(scenario())


async def aiter_of(data: bytes):
    yield data


def test_unreachable_agent_fails_fast_with_its_address():
    addr = f"127.0.0.1:{free_port()}"

    async def scenario():
        client = AgentClient(addr)
        began = time.monotonic()
        with pytest.raises(AgentUnavailable, match=f"Cannot reach agent {addr}: "):
            await client.heartbeat(timeout=3)
        with pytest.raises(AgentUnavailable, match="connection refused"):
            await client.request("GET", "/_ping")
        assert time.monotonic() - began < 3
        await client.close()

    asyncio.run(scenario())


def test_docker_runtime_needs_an_answering_engine(tmp_path, engine):
    dead = f"unix://{tmp_path}/none.sock"
    assert engine_answers(engine.url) and not engine_answers(dead)
    assert not engine_answers("tcp://127.0.0.1:1")
    with pytest.raises(RuntimeUnavailable, match=f"Docker Engine at {dead} does not answer"):
        asyncio.run(DockerRuntime(dead).start())
    with pytest.raises(ValueError, match="unsupported --docker-host 'ssh://engine'"):
        DockerRuntime("ssh://engine")  # tcp:// engines: test_agent_tls_engine.py
    assert make_runtime("auto", docker_host=engine.url).name == "docker"
    with pytest.raises(ValueError, match="unknown runtime 'podman'"):
        make_runtime("podman")


JOIN = (
    "import argparse, sys\n"
    "from agent.cli import register\n"
    "p = argparse.ArgumentParser(prog='flock'); register(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
)


def join(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOIN, "join", *args], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": ROOT},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_join_serves_until_sigterm_and_leaves_containers_running(engine, agent):
    cid = agent.run(create(agent, ["sleep", "60"]))
    agent.run(start(agent, cid))
    addr = f"127.0.0.1:{free_port()}"
    proc = join("--advertise", addr, "--docker-host", engine.url, "--name", "n1",
                "--label", "disk=ssd", "--heartbeat", "1s", f"nodes://{addr}")
    try:
        async def wait_ready():
            client = AgentClient(addr)
            try:
                for _ in range(100):
                    try:
                        return await client.info(timeout=2)
                    except AgentUnavailable:
                        await asyncio.sleep(0.1)
            finally:
                await client.close()
        info = asyncio.run(wait_ready())
        assert info is not None and info.name == "n1" and info.labels["disk"] == "ssd"
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=15)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "runtime auto: using docker" in out and "containers keep running" in out
    status, state = agent.run(agent.client.request_json("GET", f"/containers/{cid}/json"))
    assert status == 200 and state["State"]["Running"]


@pytest.mark.parametrize("args, code, message", [
    (["--advertise", "nohost"], 2, "invalid --advertise 'nohost': expected HOST:PORT"),
    (["--advertise", "127.0.0.1:1", "--heartbeat", "soon"], 2, "--heartbeat: invalid duration"),
    (["--advertise", "127.0.0.1:1", "--label", "novalue"], 2, "invalid --label 'novalue'"),
    (["--advertise", "127.0.0.1:1", "--runtime", "docker", "--docker-host",
      "unix:///nonexistent.sock"], 1, "Docker Engine at unix:///nonexistent.sock does not"),
    (["--advertise", "127.0.0.1:1", "bogus://x"], 2, "invalid discovery 'bogus://x'"),
])
def test_join_rejects_bad_options(args, code, message):
    proc = join(*args)
    out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == code, out
    assert message in out
