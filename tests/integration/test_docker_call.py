"""DockerCall: short Docker requests in one gRPC message each way, tagged on one
DockerCalls stream per agent, with the unary call and the Docker stream as fallbacks
(agents without them, answers too large for one message). A real agent server on
loopback in front of a hollow runtime; the manager's AgentClient as client."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse

import pytest

from flock.agent.metrics import AgentMetrics
from flock.agent.runtimes.hollow.service import HollowAgentService
from flock.agent.server import AgentService
from flock.manager.cluster.agent_client import (
    AgentClient,
    AgentError,
    AgentUnavailable,
    BufferedExchange,
)
from flock.manager.cluster.call_stream import StreamSlots
from flock.manager.cluster.exchanges import LateExchange
from flock.protos import agent_pb2_grpc
from tests.support.served_agent import read_backs_followed, served_agent, until


class OlderAgentService(AgentService):
    """An agent from before DockerCall: the generated servicer answers UNIMPLEMENTED."""

    DockerCall = agent_pb2_grpc.AgentServicer.DockerCall
    DockerCalls = agent_pb2_grpc.AgentServicer.DockerCalls


class AgentBeforeCallStreams(AgentService):
    """An agent with DockerCall but from before DockerCalls."""

    DockerCalls = agent_pb2_grpc.AgentServicer.DockerCalls


async def _scenario(check, service_class=AgentService, max_body: int | None = None) -> None:
    async with served_agent(service_class) as agent:
        if max_body is not None:
            agent.service.calls.max_body = max_body
        await check(agent.client)


async def _create(client: AgentClient, name: str, read_back: bool = False
                  ) -> tuple[object, str]:
    body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1"]}).encode()
    exchange = await client.request("POST", "/containers/create", f"name={name}",
                                    [("Content-Type", "application/json")], body,
                                    api_version="1.41", read_back=read_back)
    assert exchange.status == 201
    return exchange, json.loads(await exchange.body())["Id"]


def test_short_requests_travel_as_one_message_and_streams_stay_streams():
    async def check(client: AgentClient):
        exchange, cid = await _create(client, "short")
        assert isinstance(exchange, BufferedExchange)
        status, inspect = await client.request_json("GET", f"/containers/{cid}/json")
        assert status == 200 and inspect["Name"] == "/short"
        assert (await client.request_json("POST", f"/containers/{cid}/start"))[0] == 204
        logs = await client.request("GET", f"/containers/{cid}/logs", "stdout=1")
        assert not isinstance(logs, BufferedExchange)  # logs may follow: always streamed
        await logs.body()
        status, answer = await client.request_json("GET", "/containers/nope/json")
        assert status == 404 and "nope" in answer["message"]  # the runtime's own error

    asyncio.run(_scenario(check))


def test_an_agent_without_docker_call_is_served_by_the_stream():
    async def check(client: AgentClient):
        exchange, cid = await _create(client, "older")
        assert not isinstance(exchange, BufferedExchange) and client._unary is False
        status, inspect = await client.request_json("GET", f"/containers/{cid}/json")
        assert status == 200 and inspect["Id"] == cid

    asyncio.run(_scenario(check, OlderAgentService))


def test_an_answer_too_large_for_one_message_comes_by_the_stream():
    async def check(client: AgentClient):
        exchange, cid = await _create(client, "large")  # {"Id":...} fits in 200 bytes
        status, inspect = await client.request_json("GET", f"/containers/{cid}/json")
        assert status == 200 and inspect["Id"] == cid  # the inspect does not: streamed
        assert client._unary is True  # one large answer does not turn the call off

    asyncio.run(_scenario(check, max_body=200))


def test_a_malformed_request_is_refused_with_the_bridge_s_words():
    async def check(client: AgentClient):
        with pytest.raises(AgentError, match="whitespace"):
            await client.request("GET", "/containers/a b/json")

    asyncio.run(_scenario(check))


@pytest.mark.parametrize("service_class", [AgentService, HollowAgentService],
                         ids=["over-the-socket", "in-process"])
def test_a_change_comes_back_with_the_container_read_after_it(service_class):
    async def check(client: AgentClient):
        body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"]}).encode()
        before = time.time_ns()
        created = await client.request("POST", "/containers/create", "name=rb",
                                       [("Content-Type", "application/json")], body,
                                       read_back=True)
        cid = json.loads(await created.body())["Id"]
        read = created.read_back
        assert read is not None and before <= read.read_at_ns <= time.time_ns()
        assert json.loads(read.inspect)["State"]["Status"] == "created"
        [entry] = json.loads(read.listing)
        assert entry["Id"] == cid and entry["Names"] == ["/rb"]

        started = await client.request("POST", "/containers/rb/start", read_back=True)
        assert started.status == 204 and await started.body() == b""  # the answer as is
        inspect = json.loads(started.read_back.inspect)
        assert inspect["Id"] == cid and inspect["State"]["Running"] is True
        assert started.read_back.read_at_ns >= read.read_at_ns

        # Nothing to read back: a refusal, a removal, a list, or when not asked.
        again = await client.request("POST", f"/containers/{cid}/start", read_back=True)
        assert again.status == 304 and again.read_back is None
        missing = await client.request("POST", "/containers/nope/start", read_back=True)
        assert missing.status == 404 and missing.read_back is None
        listing = await client.request("GET", "/containers/json", "all=1", read_back=True)
        assert listing.status == 200 and listing.read_back is None
        plain = await client.request("POST", f"/containers/{cid}/stop", "t=0")
        assert plain.status == 204 and plain.read_back is None
        removed = await client.request("DELETE", f"/containers/{cid}", read_back=True)
        assert removed.status == 204 and removed.read_back is None

    asyncio.run(_scenario(check, service_class))


def test_an_older_agent_answers_without_a_read_back():
    async def check(client: AgentClient):
        created, _ = await _create(client, "older", read_back=True)
        assert created.read_back is None

    asyncio.run(_scenario(check, OlderAgentService))


def test_an_agent_without_call_streams_is_called_one_call_at_a_time():
    async def check(client: AgentClient):
        created, _ = await _create(client, "unary", read_back=True)
        assert isinstance(created, BufferedExchange) and created.read_back is not None
        assert client._calls is None and client._unary is True
        status, inspect = await client.request_json("GET", "/containers/unary/json")
        assert status == 200 and inspect["Name"] == "/unary"

    asyncio.run(_scenario(check, AgentBeforeCallStreams))


def test_calls_in_flight_together_each_get_their_own_answer():
    """64 creates and a refusal at once on one stream: every answer reaches its caller,
    and the refused call fails alone."""
    async def check(client: AgentClient):
        async def create(index: int) -> tuple[int, str]:
            _, cid = await _create(client, f"many-{index}")
            status, answer = await client.request_json("GET", f"/containers/{cid}/json")
            assert status == 200
            return index, answer["Name"]

        async def refused() -> None:
            with pytest.raises(AgentError, match="whitespace"):
                await client.request("GET", "/containers/a b/json")

        results = await asyncio.gather(*(create(i) for i in range(64)), refused())
        assert [name for _, name in results[:64]] == [f"/many-{i}" for i in range(64)]
        assert client._calls is not None and client._unary is True

    asyncio.run(_scenario(check))


def test_a_broken_stream_fails_its_calls_and_the_next_call_opens_another():
    async def check() -> None:
        async with served_agent() as agent:
            client = agent.client
            await _create(client, "before")
            await agent.server.stop(0)
            # Nothing is left reading the broken stream's requests (gRPC's own task for it
            # waited for the next one forever, and leaked).
            for _ in range(50):
                if client._calls._current is None:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            assert not [t for t in asyncio.all_tasks()
                        if "consume_request_iterator" in repr(t.get_coro())]
            with pytest.raises(AgentUnavailable, match=f"Cannot reach agent {agent.addr}"):
                await client.request("GET", "/containers/before/json")
            await agent.serve()
            for _ in range(50):  # the channel reconnects within its backoff
                try:
                    status, answer = await client.request_json("GET",
                                                               "/containers/before/json")
                    break
                except AgentUnavailable:
                    await asyncio.sleep(0.2)
            assert status == 200 and answer["Name"] == "/before"
            assert client._calls is not None  # still on a stream: a new one

    asyncio.run(check())


def test_the_agent_counts_each_call_on_the_stream_as_a_docker_call():
    metrics = AgentMetrics()

    async def check() -> None:
        async with served_agent(metrics=metrics) as agent:
            client = agent.client
            await _create(client, "counted")
            assert (await client.request_json("GET", "/containers/counted/json"))[0] == 200
            with pytest.raises(AgentError):
                await client.request("GET", "/containers/a b/json")

    asyncio.run(check())
    text = metrics.render()
    assert 'flock_agent_rpcs_total{method="DockerCall",code="OK"} 2' in text
    assert 'flock_agent_rpcs_total{method="DockerCall",code="INVALID_ARGUMENT"} 1' in text
    assert 'flock_agent_runtime_request_duration_seconds_count{method="POST"} 1' in text
    assert 'flock_agent_runtime_request_duration_seconds_count{method="GET"} 1' in text


def test_a_hollow_read_back_is_what_the_socket_answers():
    """The hollow agent reads back from its store directly; what it returns must be the
    inspect and the filtered list the runtime's socket gives for the same container."""
    async def check(client: AgentClient):
        body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"],
                           "Labels": {"a": "b"}}).encode()
        created = await client.request("POST", "/containers/create", "name=same",
                                       [("Content-Type", "application/json")], body,
                                       read_back=True)
        started = await client.request("POST", "/containers/same/start", read_back=True)
        for exchange in (created, started):
            assert exchange.read_back is not None
        cid = json.loads(await created.body())["Id"]
        sockets = client._unary, client._calls
        client._unary, client._calls = False, None  # from here on: the socket, streamed
        try:
            status, inspect = await client.request_json("GET", f"/containers/{cid}/json")
            query = "all=1&filters=" + urllib.parse.quote(json.dumps({"id": [cid]}))
            status_list, listing = await client.request_json("GET", "/containers/json", query)
        finally:
            client._unary, client._calls = sockets
        assert status == status_list == 200
        assert json.loads(started.read_back.inspect) == inspect
        assert json.loads(started.read_back.listing) == listing
        assert json.loads(created.read_back.inspect)["State"]["Status"] == "created"

    asyncio.run(_scenario(check, HollowAgentService))


def test_streams_past_the_manager_s_cap_wait_their_turn_as_unary_calls():
    """Two agents, room for one stream: the second agent's calls go unary until the
    first stream has been idle long enough to close and give its slot up."""
    slots = StreamSlots(limit=1, idle=0.3)

    async def check() -> None:
        async with served_agent(name="one", slots=slots) as one, \
                served_agent(name="two", slots=slots) as two:
            first, second = one.client, two.client
            await _create(first, "c-a")
            assert slots.open == 1 and first._calls._current is not None
            await _create(second, "c-b")  # no room: answered all the same, unary
            assert slots.open == 1 and second._calls._current is None
            assert (await second.request_json("GET", "/containers/c-b/json"))[0] == 200
            for _ in range(50):  # the first stream closes once idle, without a failure
                if slots.open == 0:
                    break
                await asyncio.sleep(0.05)
            assert slots.open == 0 and first._calls._current is None
            await _create(second, "c-c")
            assert slots.open == 1 and second._calls._current is not None
            assert (await first.request_json("GET", "/containers/c-a/json"))[0] == 200

    asyncio.run(check())
    assert slots.open == 0


def test_a_change_answered_at_once_has_its_read_back_on_the_event_stream():
    """read_back_later: with no manager following the agent's events with read-backs the
    read stays in the answer; with one, a create and a start are answered at once and
    their reads come on that event stream, in full. A change whose outcome needs the
    read (a stop: its exit code) is asked without read_back_later and keeps it inline."""
    async def scenario() -> None:
        async with served_agent(AgentService) as agent:
            client = agent.client
            body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"]}).encode()
            create = ("POST", "/containers/create")
            alone = await client.request(*create, "name=alone", [CONTENT_JSON], body,
                                         read_back=True, read_back_later=True)
            assert alone.read_back is not None and alone.read_back.inspect  # nobody follows

            reads: asyncio.Queue = asyncio.Queue()
            plain: list[dict] = []

            async def follow(read_backs=None, into=None) -> None:
                async for event in client.events(read_backs=read_backs):
                    if into is not None:
                        into.append(event)

            followers = [asyncio.create_task(follow(reads.put_nowait)),
                         asyncio.create_task(follow(into=plain))]
            try:
                await until(lambda: agent.service.read_backs.listened)
                created = await client.request(*create, "name=later", [CONTENT_JSON], body,
                                               read_back=True, read_back_later=True)
                cid = json.loads(await created.body())["Id"]
                assert created.status == 201 and created.read_back is None
                read = await asyncio.wait_for(reads.get(), 10)
                assert json.loads(read.inspect)["State"]["Status"] == "created"
                assert [e["Id"] for e in json.loads(read.listing)] == [cid]

                started = await client.request("POST", f"/containers/{cid}/start",
                                               read_back=True, read_back_later=True)
                assert started.status == 204 and started.read_back is None
                later = await asyncio.wait_for(reads.get(), 10)
                assert json.loads(later.inspect)["State"]["Running"] is True
                assert later.read_at_ns >= read.read_at_ns

                stopped = await client.request("POST", f"/containers/{cid}/stop", "t=0",
                                               read_back=True)
                assert json.loads(stopped.read_back.inspect)["State"]["Running"] is False
                assert reads.empty()
                # The events themselves still come, on both streams; read-backs only on
                # the stream that asked for them (the plain one parses every message).
                await until(lambda: any(e.get("Action") == "start" for e in plain))
            finally:
                for task in followers:
                    task.cancel()
                await asyncio.gather(*followers, return_exceptions=True)

    asyncio.run(scenario())


CONTENT_JSON = ("Content-Type", "application/json")


def test_a_manager_s_own_stream_leaves_out_the_events_its_read_backs_reflect():
    """The in-process hollow agent: a create and a start read back for this manager are
    not echoed on its named event stream; the stop made without a read-back is, and a
    stream without a name (a client's `docker events`) gets every event."""
    async def scenario() -> None:
        async with served_agent(HollowAgentService) as agent:
            client = agent.client
            own: list[dict] = []
            plain: list[dict] = []

            async def follow(into: list[dict], read_backs=None) -> None:
                async for event in client.events(read_backs=read_backs):
                    into.append(event)

            followers = [asyncio.create_task(follow(own, lambda read: None)),
                         asyncio.create_task(follow(plain))]
            try:
                await until(lambda: client.events_token
                             and agent.service.reflected._streams)
                body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"]}).encode()
                created = await client.request("POST", "/containers/create", "name=quiet",
                                               [CONTENT_JSON], body, read_back=True)
                cid = json.loads(await created.body())["Id"]
                started = await client.request("POST", f"/containers/{cid}/start",
                                               read_back=True)
                assert created.read_back.inspect and started.read_back.inspect
                stopped = await client.request("POST", f"/containers/{cid}/stop", "t=0")
                assert stopped.status == 204

                def actions(events: list[dict]) -> list[str]:
                    return [e["Action"] for e in events if e.get("id") == cid]

                await until(lambda: "stop" in actions(own) and "stop" in actions(plain))
                assert actions(plain)[:2] == ["create", "start"]
                assert "create" not in actions(own) and "start" not in actions(own)
                assert "die" in actions(own)
            finally:
                for task in followers:
                    task.cancel()
                await asyncio.gather(*followers, return_exceptions=True)
            await until(lambda: not agent.service.reflected._streams)  # closed: forgotten

    asyncio.run(scenario())


def test_a_start_soon_after_its_create_reads_back_for_both():
    """later_reads.py: the create's read waits DELAY for a change of the same container;
    the start's read takes its place, and the one read that comes is the started
    container. Without a start, the create's read comes on its own after DELAY."""
    async def scenario() -> None:
        async with served_agent(AgentService) as agent:
            client = agent.client
            async with read_backs_followed(agent) as reads:
                body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"]}).encode()
                create = ("POST", "/containers/create")
                created = await client.request(*create, "name=run", [CONTENT_JSON], body,
                                               read_back=True, read_back_later=True)
                cid = json.loads(await created.body())["Id"]
                started = await client.request("POST", f"/containers/{cid}/start",
                                               read_back=True, read_back_later=True)
                assert started.status == 204
                read = await asyncio.wait_for(reads.get(), 10)
                assert json.loads(read.inspect)["State"]["Running"] is True
                await asyncio.sleep(0.2)
                assert reads.empty()  # the create's own read never came
                assert agent.service.later_reads.replaced == 1

                alone = await client.request(*create, "name=alone", [CONTENT_JSON], body,
                                             read_back=True, read_back_later=True)
                alone_id = json.loads(await alone.body())["Id"]
                read = await asyncio.wait_for(reads.get(), 10)
                assert json.loads(read.inspect)["Id"] == alone_id
                assert json.loads(read.inspect)["State"]["Status"] == "created"

    asyncio.run(scenario())


def test_a_wait_in_flight_holds_no_read_back_and_a_stop_under_a_read_redoes_it():
    """`docker run` sends its wait before the start, and the wait lasts as long as the
    container runs: it is not a change of the container, so the start's read comes
    while it waits. A change that comes while a read runs (a stop, here once the read
    saw the container running) makes the read go again after it, and the one sent on
    is the stopped container (later_reads.py; the hollow runtime has no rename, the
    real engine's case is in test_manager_api)."""
    async def scenario() -> None:
        async with served_agent(AgentService) as agent:
            client = agent.client
            async with read_backs_followed(agent) as reads:
                body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"]}).encode()
                assert (await client.info()).head_first_calls
                created = await client.request("POST", "/containers/create", "name=held",
                                               [CONTENT_JSON], body)
                cid = json.loads(await created.body())["Id"]
                waiting = await asyncio.wait_for(client.request(
                    "POST", f"/containers/{cid}/wait", "condition=next-exit",
                    api_version="1.41", head_first=True), 10)
                assert isinstance(waiting, LateExchange) and waiting.status == 200
                started = await client.request("POST", f"/containers/{cid}/start",
                                               read_back=True, read_back_later=True)
                assert started.status == 204
                read = await asyncio.wait_for(reads.get(), 5)  # not held by the wait
                assert json.loads(read.inspect)["State"]["Running"] is True

                await client.request("POST", f"/containers/{cid}/kill")
                await asyncio.wait_for(waiting.body(), 10)  # over once it exits

                later = agent.service.later_reads
                began = asyncio.Event()
                read_now = later._read

                async def slow_read(req, ref):  # read, then slow enough for a stop to come
                    found = await read_now(req, ref)
                    began.set()
                    await asyncio.sleep(0.2)
                    return found

                later._read = slow_read
                await client.request("POST", f"/containers/{cid}/start",
                                     read_back=True, read_back_later=True)
                await asyncio.wait_for(began.wait(), 5)  # the start's read saw it running
                stopped = await client.request("POST", f"/containers/{cid}/stop", "t=0")
                assert stopped.status == 204
                read = await asyncio.wait_for(reads.get(), 5)
                assert json.loads(read.inspect)["State"]["Running"] is False
                assert later.overlapped == 1
                await asyncio.sleep(0.5)
                assert reads.empty()  # the overlapped read was not sent

    asyncio.run(scenario())
