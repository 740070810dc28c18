"""The call link: DockerCalls as length-prefixed frames straight on TCP (TLS in
test_tls.py), beside gRPC. A real agent server and its link on loopback in front of a
hollow runtime, the manager's AgentClient as client: calls go over the link when the
agent names one, over gRPC when the link cannot open (nothing is lost), and a peer that
breaks the framing loses its own connection only."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
import time

import grpc
import pytest

from flock.agent.call_link import CallLinkServer, LinkedNode
from flock.agent.metrics import AgentMetrics
from flock.agent.runtimes.hollow.service import HollowAgentService
from flock.hollow import FleetConfig, HollowError, HollowFleet
from flock.manager.cluster.agent_client import AgentClient, AgentError, AgentUnavailable
from flock.manager.cluster.call_link import CallLink, LinkStream
from flock.manager.cluster.call_stream import StreamSlots
from flock.protos import agent_pb2
from tests.support.procs import REPO
from tests.support.served_agent import read_backs_followed, served_agent


async def _run(client: AgentClient, name: str) -> str:
    """docker create + start through the client; the container's ID."""
    body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "60"]}).encode()
    exchange = await client.request("POST", "/containers/create", f"name={name}",
                                    [("Content-Type", "application/json")], body,
                                    api_version="1.41")
    assert exchange.status == 201, await exchange.body()
    cid = json.loads(await exchange.body())["Id"]
    started = await client.request("POST", f"/containers/{cid}/start", api_version="1.41")
    assert started.status == 204, await started.body()
    return cid


async def _linked(client: AgentClient) -> None:
    """Info, and a first call: the link opens beside the gRPC stream that call takes,
    then carries the calls."""
    await client.info()
    status, _ = await client.request_json("GET", "/containers/json")
    assert status == 200
    for _ in range(500):
        if client.calls_carrier == "link":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the link did not open: {client.call_link.why}")


def _hollow():
    """A hollow agent serving its call link, its client with slots of its own."""
    return served_agent(HollowAgentService, link=True, slots=StreamSlots())


async def _link_failed(client: AgentClient) -> None:
    for _ in range(1000):
        if client.call_link.why:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the link neither opened nor failed")


def test_short_calls_go_over_the_link_the_agent_names():
    async def main():
        async with _hollow() as agent:
            info = await agent.client.info()
            assert info.calls_address == agent.service.calls_address != ""
            await _linked(agent.client)
            before = agent.link.answered
            cid = await _run(agent.client, "over-link")
            assert agent.client.calls_carrier == "link"
            assert agent.link.answered == before + 2  # the create and the start
            assert agent.runtime.node.get(cid).running
            # an error of one call is that call's, and the link goes on
            status, answer = await agent.client.request_json(
                "POST", "/containers/create", "name=over-link", {"Image": "busybox"})
            assert status == 409 and "already in use" in answer["message"]
            assert agent.link.answered == before + 3
            assert agent.client.calls_carrier == "link"

    asyncio.run(main())


def test_calls_in_flight_together_each_get_their_own_answer_over_the_link():
    async def main():
        async with _hollow() as agent:
            await _linked(agent.client)
            before = agent.link.answered
            ids = await asyncio.gather(*(_run(agent.client, f"many-{i}") for i in range(40)))
            assert len(set(ids)) == 40
            names = {agent.runtime.node.get(cid).name for cid in ids}
            assert names == {f"many-{i}" for i in range(40)}
            assert agent.link.answered == before + 80

    asyncio.run(main())


def test_a_link_that_does_not_open_leaves_the_calls_to_grpc():
    async def main():
        async with served_agent(HollowAgentService, link=True,
                                slots=StreamSlots(limit=2)) as agent:
            info = await agent.client.info()
            await agent.link.stop()  # the agent names a link nobody serves any more
            cid = await _run(agent.client, "after-link")
            assert agent.runtime.node.get(cid).running
            link = agent.client.call_link
            await _link_failed(agent.client)
            assert link.address == info.calls_address
            assert "connection refused" in link.why and not link.usable()
            assert agent.client.calls_carrier == "stream"
            # the attempt gave its slot back: only the gRPC stream holds one
            assert agent.client._slots.open == 1
            await _run(agent.client, "still-grpc")
            assert agent.client.calls_carrier == "stream" and agent.link.answered == 0

    asyncio.run(main())


def test_a_link_that_serves_another_node_is_refused_and_grpc_takes_the_calls():
    async def main():
        async with _hollow() as agent:
            await agent.client.info()
            # As if the engine behind the address had been replaced since Info.
            agent.client.call_link.node_id = "ANOTHER:NODE"
            await _run(agent.client, "other-node")
            await _link_failed(agent.client)
            assert agent.client.call_link.why == "node ANOTHER:NODE is not served here"
            assert agent.link.answered == 0
            assert agent.client.calls_carrier == "stream"

    asyncio.run(main())


class HangingAgent(HollowAgentService):
    """A hollow agent on which GET /containers/hang/json never answers."""

    taken: asyncio.Event

    async def docker_call(self, request):
        if request.request.path == "/containers/hang/json":
            self.taken.set()
            await asyncio.Event().wait()
        return await super().docker_call(request)

    def docker_call_now(self, request):
        if request.request.path == "/containers/hang/json":
            return None
        return super().docker_call_now(request)


def test_a_link_that_breaks_fails_the_calls_waiting_on_it_as_unreachable():
    async def main():
        async with served_agent(HangingAgent, link=True, slots=StreamSlots()) as agent:
            agent.service.taken = asyncio.Event()
            await _linked(agent.client)
            waiting = asyncio.create_task(agent.client.request("GET", "/containers/hang/json"))
            await asyncio.wait_for(agent.service.taken.wait(), 10)
            await agent.link.stop()
            with pytest.raises(AgentUnavailable, match="call link to 127.0.0.1:.* broke"):
                await asyncio.wait_for(waiting, 10)
            # the next call goes over gRPC, and the link is tried again at once
            await _run(agent.client, "after-break")

    asyncio.run(main())


def test_the_agent_counts_each_call_on_the_link_as_a_docker_call():
    metrics = AgentMetrics()

    async def main():
        async with served_agent(metrics=metrics, link=True, slots=StreamSlots()) as agent:
            await _linked(agent.client)  # one GET, over gRPC or the link
            await _run(agent.client, "counted")
            with pytest.raises(AgentError, match="whitespace"):
                await agent.client.request("GET", "/containers/a b/json")
            assert agent.link.answered >= 3

    asyncio.run(main())
    text = metrics.render()
    assert 'flock_agent_rpcs_total{method="DockerCall",code="OK"} 3' in text
    assert 'flock_agent_rpcs_total{method="DockerCall",code="INVALID_ARGUMENT"} 1' in text
    assert 'flock_agent_runtime_request_duration_seconds_count{method="POST"} 2' in text


def test_a_read_back_sent_later_begins_after_the_answer_is_written():
    """A create or start answered at once (read_back_later, with a manager following
    the agent's read-backs) is answered before its read-back begins: the read's first
    step (an inspect set up in aiohttp) used to run first, and held every answer
    0.4-0.6 ms (the closing note of issue 19). The read's stamp is when it began.
    The create's read is awaited before the start is sent: a start under way would
    otherwise take the create's read's place (agent/later_reads.py)."""
    async def main():
        async with served_agent(link=True, slots=StreamSlots()) as agent:
            client = agent.client
            await _linked(client)
            written: dict[str, int] = {}  # the answer's path -> when its frame went out
            counted = agent.link.observe

            def observe(request, reply, seconds) -> None:
                written[request.path.rsplit("/", 1)[-1]] = time.time_ns()
                if counted is not None:
                    counted(request, reply, seconds)

            agent.link.observe = observe
            async with read_backs_followed(agent) as reads:
                body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "60"]}).encode()
                created = await client.request(
                    "POST", "/containers/create", "name=answered-first",
                    [("Content-Type", "application/json")], body, api_version="1.41",
                    read_back=True, read_back_later=True)
                cid = json.loads(await created.body())["Id"]
                assert created.status == 201 and created.read_back is None
                read = await asyncio.wait_for(reads.get(), 10)
                assert read.read_at_ns > written["create"]
                started = await client.request("POST", f"/containers/{cid}/start",
                                               api_version="1.41", read_back=True,
                                               read_back_later=True)
                assert started.status == 204 and started.read_back is None
                read = await asyncio.wait_for(reads.get(), 10)
                assert read.read_at_ns > written["start"]

    asyncio.run(main())


# ------------------------------------------------------------------ bad input on the wire
def _frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def _closed_after(port: int, data: bytes | list[bytes]) -> bytes:
    """What the link answers to `data` before it closes the connection. A list is sent
    a piece at a time, each but the last once the agent has answered it (the hello)."""
    pieces = data if isinstance(data, list) else [data]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        answer = b""
        for piece in pieces[:-1]:
            sock.sendall(piece)
            answer += sock.recv(6)  # the hello's "ok" frame
        sock.sendall(pieces[-1])
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def _hello(node_id: str) -> bytes:
    return _frame(b"flock-calls/1 " + node_id.encode())


_CALL = _frame(agent_pb2.TaggedDockerCall(id=1, call=agent_pb2.DockerCallRequest(
    request=agent_pb2.DockerRequest(method="GET", path="/containers/json"))).SerializeToString())


@pytest.mark.parametrize("case,data,answer", [
    ("no hello", lambda node: _frame(b"GET / HTTP/1.1"), b""),
    ("a frame over the limit", lambda node: struct.pack(">I", 1 << 30) + b"x" * 100, b""),
    ("garbage after the hello", lambda node: [_hello(node), _frame(b"\xff\xff\xff")],
     _frame(b"ok")),
    ("a call before the hello is answered", lambda node: _hello(node) + _CALL, b""),
    ("an unknown node", lambda node: _hello("NOBODY"),
     _frame(b"no node NOBODY is not served here")),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_peer_that_breaks_the_protocol_loses_its_own_connection_only(case, data, answer):
    async def main():
        async with _hollow() as agent:
            info = await agent.client.info()
            port = int(info.calls_address.rpartition(":")[2])
            got = await asyncio.to_thread(_closed_after, port, data(info.id))
            assert got == answer
            # the link still serves the manager
            await _linked(agent.client)
            await _run(agent.client, "still-served")
            assert agent.client.calls_carrier == "link"

    asyncio.run(main())


def test_the_manager_s_setting_of_no_streams_keeps_the_link_closed_too():
    async def main():
        async with served_agent(HollowAgentService, link=True,
                                slots=StreamSlots(limit=0)) as agent:
            await agent.client.info()
            await _run(agent.client, "unary")
            assert agent.link.answered == 0 and agent.client.calls_carrier == ""

    asyncio.run(main())


def test_a_stale_link_address_is_replaced_when_info_names_another():
    client = AgentClient("127.0.0.1:1", stream_slots=StreamSlots())

    async def main():
        client.stub  # noqa: B018 - creates the call stream, as the first call does
        client._note_link(agent_pb2.NodeInfo(id="A", calls_address="127.0.0.1:5"))
        first = client.call_link
        client._note_link(agent_pb2.NodeInfo(id="A", calls_address="127.0.0.1:5"))
        assert client.call_link is first  # the same: its failures are remembered
        client._note_link(agent_pb2.NodeInfo(id="A", calls_address="127.0.0.1:6"))
        assert isinstance(client.call_link, CallLink) and client.call_link.address.endswith(":6")
        client._note_link(agent_pb2.NodeInfo(id="A"))
        assert client.call_link is None
        await client.close()

    asyncio.run(main())


def test_an_unanswered_call_is_still_cancelled_cleanly():
    async def main():
        async with _hollow() as agent:
            await _linked(agent.client)
            await _run(agent.client, "first")
            # gRPC's own error type never reaches callers of the link
            task = asyncio.create_task(agent.client.request("GET", "/containers/first/json"))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            status, answer = await agent.client.request_json("GET", "/containers/first/json")
            assert status == 200 and answer["Name"] == "/first"

    asyncio.run(main())


def test_the_grpc_status_of_a_refused_call_comes_over_the_link():
    async def main():
        async with _hollow() as agent:
            await _linked(agent.client)
            # A path the agent's bridge refuses: the status and words of the gRPC path
            # (test_docker_call.py), and the link stays open.
            with pytest.raises(AgentError, match="whitespace") as refused:
                await agent.client.request("GET", "/containers/a b/json")
            assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert agent.client.calls_carrier == "link"

    asyncio.run(main())


# ------------------------------------------------------------------ the flags
@pytest.mark.parametrize("program", [
    ["join", "--advertise", "127.0.0.1:1"],
    ["hollow", "--agents", "1"],
])
def test_a_bad_calls_port_stops_the_start_with_a_message_naming_it(program):
    proc = subprocess.run([sys.executable, "-m", "flock", *program, "--calls-port", "70000"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2
    assert "invalid --calls-port '70000': a port (0-65535, 0 for a free one) or off" \
        in proc.stderr


def test_a_fleet_with_the_link_off_names_none_and_is_called_over_grpc():
    async def main():
        fleet = HollowFleet(FleetConfig(agents=1, calls_port=None))
        await fleet.start()
        client = AgentClient(fleet.addresses[0], stream_slots=StreamSlots())
        try:
            assert (await client.info()).calls_address == ""
            await _run(client, "no-link")
            assert client.calls_carrier == "stream"
        finally:
            await client.close()
            await fleet.stop()

    asyncio.run(main())


def test_a_fleet_whose_calls_port_is_taken_says_so():
    async def main():
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            fleet = HollowFleet(FleetConfig(agents=1, calls_port=port))
            with pytest.raises(HollowError, match=f"cannot listen on 127.0.0.1:{port} for "
                                                  "--calls-port: Address already in use$"):
                await fleet.start()

    asyncio.run(main())


def test_the_fleet_s_nodes_share_one_link_and_each_call_reaches_its_own_node():
    async def main():
        fleet = HollowFleet(FleetConfig(agents=3))
        await fleet.start()
        clients = [AgentClient(a, stream_slots=StreamSlots()) for a in fleet.addresses]
        try:
            infos = [await c.info() for c in clients]
            assert len({i.calls_address for i in infos}) == 1
            for index, client in enumerate(clients):
                await _linked(client)
                await _run(client, f"on-{index}")
                assert client.calls_carrier == "link"
            for index, agent in enumerate(fleet.agents):
                assert [c.name for c in agent.runtime.node.containers.values()] == [f"on-{index}"]
        finally:
            for client in clients:
                await client.close()
            await fleet.stop()

    asyncio.run(main())


# ------------------------------------------------------------------ TLS, at the link's own level
def _identity(folder, ca, name: str, **kwargs):
    from flock.certs import issue, load_identity, write_identity

    return load_identity(write_identity(folder / name, issue(ca, name, **kwargs), ca.cert))


async def _open(link: CallLink) -> str:
    """Open a LinkStream to `link`: "opened", or "failed: <why>"."""
    done: asyncio.Future = asyncio.get_running_loop().create_future()
    stream = LinkStream(link, lambda s: done.done() or done.set_result(f"failed: {link.why}"),
                        lambda s: done.set_result("opened"))
    outcome = await asyncio.wait_for(done, 10)
    stream.finish()
    await asyncio.wait_for(stream.reader, 10)
    return outcome


@pytest.mark.parametrize("agent_ips,dial,outcome", [
    (["127.0.0.1"], "127.0.0.1", "opened"),
    (["10.255.0.1"], "127.0.0.1", "failed: TLS: CERTIFICATE_VERIFY_FAILED"),
], ids=["the-agent-cert-names-the-host", "it-does-not"])
def test_the_manager_checks_that_the_link_s_cert_names_the_host_dialled(
        tmp_path, agent_ips, dial, outcome):
    from flock.certs import client_ssl_context, make_ca, server_ssl_context

    ca = make_ca("link CA")
    agent = _identity(tmp_path, ca, "agent", ips=agent_ips, server=True)
    manager = _identity(tmp_path, ca, "manager", role="manager")

    async def main():
        async def resolve(node_id: str):
            return LinkedNode(lambda request: None) if node_id == "N" else None

        server = CallLinkServer(resolve, server_ssl_context(agent, verify=True))
        port = await server.start("127.0.0.1")
        try:
            return await _open(CallLink(f"{dial}:{port}", "N", client_ssl_context(manager)))
        finally:
            await server.stop()

    assert asyncio.run(main()) == outcome


def test_past_the_manager_s_link_budget_nodes_are_called_over_grpc():
    async def main():
        slots = StreamSlots(link_limit=1)
        async with served_agent(HollowAgentService, "first", link=True, slots=slots) as first, \
                served_agent(HollowAgentService, "second", link=True, slots=slots) as second:
            await _linked(first.client)
            await _run(second.client, "second")
            await asyncio.sleep(0.2)  # time enough for a link to open, were one tried
            assert first.client.calls_carrier == "link"
            assert second.client.calls_carrier == "stream" and second.link.answered == 0
            assert (slots.links, slots.open) == (1, 2)
            await first.client.close()  # its link closes: the budget is free again
            assert (slots.links, slots.open) == (0, 1)
            await _linked(second.client)

    asyncio.run(main())


def test_a_link_probes_its_peer_so_a_silent_one_is_noticed_as_grpc_notices_it():
    async def main():
        async def resolve(node_id: str):
            return LinkedNode(lambda request: None)

        server = CallLinkServer(resolve)
        port = await server.start("127.0.0.1")
        opened: asyncio.Future = asyncio.get_running_loop().create_future()
        stream = LinkStream(CallLink(f"127.0.0.1:{port}", "N"), lambda s: None,
                            opened.set_result)
        try:
            await asyncio.wait_for(opened, 10)
            sock = stream._end.transport.get_extra_info("socket")
            return [sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)]
        finally:
            stream.finish()
            await asyncio.wait_for(stream.reader, 10)
            await server.stop()

    assert asyncio.run(main()) == [1, 20, 30_000]


def test_a_connection_that_never_says_hello_is_closed(monkeypatch):
    from flock.agent import call_link

    monkeypatch.setattr(call_link, "HELLO_TIMEOUT", 0.2)

    async def main():
        async with _hollow() as agent:
            info = await agent.client.info()
            port = int(info.calls_address.rpartition(":")[2])

            def silent() -> bytes:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    return sock.recv(100)

            assert await asyncio.to_thread(silent) == b""
            assert agent.link.connections == 0

    asyncio.run(main())


def test_a_manager_that_reads_its_answers_late_loses_none():
    """Answers far larger than the socket buffers, read a second late: the agent's
    writes wait (and, past its high-water mark, its reads), and every call is still
    answered once, none lost or stuck once the manager reads."""
    calls = 300

    async def main():
        async with _hollow() as agent:
            info = await agent.client.info()
            big = {"Image": "busybox", "Labels": {"filler": "x" * 60_000}}
            status, _ = await agent.client.request_json(
                "POST", "/containers/create", "name=big", big)
            assert status == 201
            port = int(info.calls_address.rpartition(":")[2])
            inspect = agent_pb2.DockerCallRequest(request=agent_pb2.DockerRequest(
                method="GET", path="/containers/big/json", api_version="1.41"))

            def late_reader() -> list[int]:
                with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                    sock.sendall(_hello(info.id))
                    assert sock.recv(6) == _frame(b"ok")
                    sock.sendall(b"".join(_frame(agent_pb2.TaggedDockerCall(
                        id=i, call=inspect).SerializeToString()) for i in range(1, calls + 1)))
                    time.sleep(1)  # the answers (~18 MB) fill every buffer meanwhile
                    reader = sock.makefile("rb")
                    ids = []
                    for _ in range(calls):
                        size = struct.unpack(">I", reader.read(4))[0]
                        answer = agent_pb2.TaggedDockerCallReply.FromString(reader.read(size))
                        assert answer.reply.response.status == 200
                        ids.append(answer.id)
                    return ids

            ids = await asyncio.to_thread(late_reader)
            assert sorted(ids) == list(range(1, calls + 1))

    asyncio.run(main())
