"""DockerCall: short Docker requests in one gRPC message each way, with the stream as the
fallback (agents without the call, answers too large for one message). A real agent
server on loopback in front of a hollow runtime; the manager's AgentClient as client."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent.runtimes.hollow.runtime import HollowRuntime
from agent.server import AgentService, make_server
from manager.cluster.agent_client import AgentClient, AgentError, BufferedExchange
from protos import agent_pb2_grpc
from tests.conftest import free_port


class OlderAgentService(AgentService):
    """An agent from before DockerCall: the generated servicer answers UNIMPLEMENTED."""

    DockerCall = agent_pb2_grpc.AgentServicer.DockerCall


async def _scenario(check, service_class=AgentService, max_body: int | None = None) -> None:
    runtime = HollowRuntime(node_name="calls")
    await runtime.start()
    addr = f"127.0.0.1:{free_port()}"
    service = service_class(runtime, addr)
    if max_body is not None:
        service.calls.max_body = max_body
    server, _ = make_server(service, addr)
    await server.start()
    client = AgentClient(addr)
    try:
        await check(client)
    finally:
        await client.close()
        await server.stop(0)
        await service.calls.close()
        await runtime.stop()


async def _create(client: AgentClient, name: str) -> tuple[object, str]:
    body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1"]}).encode()
    exchange = await client.request("POST", "/containers/create", f"name={name}",
                                    [("Content-Type", "application/json")], body,
                                    api_version="1.41")
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
