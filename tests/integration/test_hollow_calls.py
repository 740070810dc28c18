"""The hollow agent answers short Docker requests and the event stream in process
(agent/runtimes/hollow/calls.py, service.py). What the manager receives must be what the
runtime's own socket answers: same status, same JSON, same headers (but the per-hop
ones), same error words. A real hollow agent on loopback, the manager's AgentClient on
one side and a plain HTTP client on the runtime's socket on the other."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from flock.agent.runtimes.hollow.service import HollowAgentService
from flock.docker_compat.hop_headers import HOP_BY_HOP
from flock.manager.cluster.agent_client import AgentClient, AgentUnavailable
from tests.support.served_agent import served_agent

pytestmark = pytest.mark.timeout(60)
_PER_HOP = HOP_BY_HOP | {"date", "server"}


async def _scenario(check) -> None:
    async with served_agent(HollowAgentService, "in-process") as agent:
        connector = aiohttp.UnixConnector(path=agent.runtime.socket_path)
        async with aiohttp.ClientSession(connector=connector) as socket:
            await check(agent.runtime, agent.client, socket)


async def _both(client: AgentClient, socket: aiohttp.ClientSession, method: str, path: str,
                query: str = "", body: bytes | None = None, version: str = "1.41"):
    """(status, headers, body) from the agent (DockerCall) and from the socket."""
    headers = [("Content-Type", "application/json")] if body is not None else []
    exchange = await client.request(method, path, query, headers, body, api_version=version)
    grpc_side = (exchange.status, _headers(exchange.headers), await exchange.body())
    url = f"http://docker/v{version}{path}" + (f"?{query}" if query else "")
    async with socket.request(method, url, data=body, headers=dict(headers)) as resp:
        http_side = (resp.status, _headers(resp.headers.items()), await resp.read())
    return grpc_side, http_side


def _headers(pairs) -> dict[str, str]:
    return {k.lower(): v for k, v in pairs if k.lower() not in _PER_HOP}


def test_read_requests_and_refusals_answer_as_the_socket_does():
    async def check(runtime, client, socket):
        body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"], "Labels": {"a": "b"},
                           "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "8080"}]}}})
        for name in ("one", "two"):
            status, _ = await client.request_json("POST", "/containers/create", f"name={name}",
                                                  json.loads(body))
            assert status == 201
        assert (await client.request_json("POST", "/containers/one/start"))[0] == 204
        same = [
            ("GET", "/containers/one/json", ""),
            ("GET", "/containers/two/json", ""),
            ("GET", "/containers/json", ""),
            ("GET", "/containers/json", "all=1"),
            ("GET", "/containers/json", "all=1&filters=" + '{"label":["a=b"]}'),
            ("GET", "/containers/json", "all=true&limit=1"),
            ("GET", "/containers/json", "limit=x"),  # 400: invalid value for limit
            ("GET", "/containers/json", "filters=" + '{"status":["nope"]}'),  # 400
            ("GET", "/containers/json", "filters=notjson"),  # 400
            ("GET", "/containers/nope/json", ""),  # 404
            ("POST", "/containers/nope/start", ""),  # 404
            ("POST", "/containers/one/start", ""),  # 304: running already
            ("POST", "/containers/two/stop", "t=x"),  # 400: invalid value for t
            ("POST", "/containers/two/stop", ""),  # 304: not running
            ("POST", "/containers/two/kill", ""),  # 409: not running
            ("POST", "/containers/one/kill", "signal=NOPE"),  # 400
            ("DELETE", "/containers/one", ""),  # 409: running
        ]
        for method, path, query in same:
            grpc_side, http_side = await _both(client, socket, method, path, query)
            assert grpc_side == http_side, (method, path, query)
        for raw in (b"", b"{bad json", b"[1]", b'{"Cmd": ["x"]}', b'{"Image": "nothere"}'):
            grpc_side, http_side = await _both(client, socket, "POST", "/containers/create",
                                               "name=three", raw)
            assert grpc_side == http_side, raw
            assert grpc_side[0] in (400, 404), grpc_side
        grpc_side, http_side = await _both(client, socket, "POST", "/containers/create",
                                           "name=one", body.encode())
        assert grpc_side == http_side and grpc_side[0] == 409  # the name is taken
        # A version the runtime does not speak: refused in the socket's words.
        grpc_side, http_side = await _both(client, socket, "GET", "/containers/json",
                                           version="1.99")
        assert grpc_side == http_side and grpc_side[0] == 400

    asyncio.run(_scenario(check))


def test_changes_answer_as_the_socket_does():
    async def check(runtime, client, socket):
        body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"]}).encode()
        for name in ("by-call", "by-socket"):
            async with socket.post(f"http://docker/containers/create?name={name}",
                                   data=body) as resp:
                assert resp.status == 201
        steps = [("POST", "start", ""), ("POST", "restart", "t=1"), ("POST", "stop", "t=0"),
                 ("POST", "start", ""), ("POST", "kill", "signal=SIGTERM"),
                 ("DELETE", "", "force=1")]
        for method, verb, query in steps:
            answers = []
            for name in ("by-call", "by-socket"):
                path = f"/containers/{name}" + (f"/{verb}" if verb else "")
                if name == "by-call":
                    exchange = await client.request(method, path, query)
                    answers.append((exchange.status, _headers(exchange.headers),
                                    await exchange.body()))
                else:
                    url = f"http://docker{path}" + (f"?{query}" if query else "")
                    async with socket.request(method, url) as resp:
                        answers.append((resp.status, _headers(resp.headers.items()),
                                        await resp.read()))
            assert answers[0] == answers[1], (method, verb)
        assert runtime.node.containers == {}

    asyncio.run(_scenario(check))


def test_events_come_in_process_with_replay_and_end_when_the_runtime_stops():
    async def check(runtime, client, socket):
        seen: list[dict] = []

        async def follow(since: float) -> None:
            async for event in client.events(since=since):
                seen.append(event)

        began = runtime.node.bus.history[-1]["time"] if runtime.node.bus.history else 0
        status, created = await client.request_json(
            "POST", "/containers/create", "name=evented", {"Image": "busybox"})
        assert status == 201
        follower = asyncio.create_task(follow(since=began or 1))
        await asyncio.sleep(0.3)  # the replayed create is in
        await client.request_json("POST", "/containers/evented/start")
        for _ in range(50):
            if [e["Action"] for e in seen] == ["create", "start"]:
                break
            await asyncio.sleep(0.05)
        assert [e["Action"] for e in seen] == ["create", "start"]
        assert all(e["id"] == created["Id"] for e in seen)
        assert seen[0]["Actor"]["Attributes"]["name"] == "evented"
        runtime.node.bus.closing.set()  # as runtime.stop() does
        with pytest.raises(AgentUnavailable, match="event stream ended"):
            await asyncio.wait_for(follower, 5)

    asyncio.run(_scenario(check))
