"""Head-first calls: a wait's head comes back on the agent's call stream (or link) as
soon as the runtime sends it, its body once the container exits, and a wait given up
on stops on the agent. `docker run` sends its start only once its wait's head is in
(docker/cli run.go waits for the response before ContainerStart), so that head is on
every run's path. A real agent server on loopback in front of a hollow runtime (whose
wait answers as dockerd's does: head first, body at the exit); the manager's
AgentClient as client."""

from __future__ import annotations

import asyncio
import json

import pytest

from flock.agent.server import AgentService
from flock.manager.cluster.agent_client import AgentClient, DockerExchange, LateExchange
from tests.support.served_agent import served_agent, until

CONTENT_JSON = ("Content-Type", "application/json")


class AgentBeforeHeadFirst(AgentService):
    """An agent from before head-first calls: its NodeInfo does not say it takes them."""

    def _with_spec(self, info):
        info = super()._with_spec(info)
        info.head_first_calls = False
        return info


async def _running(client: AgentClient, name: str) -> str:
    body = json.dumps({"Image": "busybox", "Cmd": ["sleep", "1d"]}).encode()
    created = await client.request("POST", "/containers/create", f"name={name}",
                                   [CONTENT_JSON], body, api_version="1.41")
    container_id = json.loads(await created.body())["Id"]
    started = await client.request("POST", f"/containers/{container_id}/start")
    assert started.status == 204
    return container_id


async def _wait(client: AgentClient, container_id: str) -> DockerExchange:
    return await asyncio.wait_for(client.request(
        "POST", f"/containers/{container_id}/wait", "condition=next-exit",
        api_version="1.41", head_first=True), 5)


@pytest.mark.parametrize("link", [False, True], ids=["call stream", "call link"])
def test_a_wait_s_head_comes_before_the_exit_and_its_body_after(link):
    async def scenario():
        async with served_agent(AgentService, link=link) as agent:
            client = agent.client
            assert (await client.info()).head_first_calls
            container_id = await _running(client, "waited")
            if link:
                await until(lambda: client.calls_carrier == "link")
            waiting = await _wait(client, container_id)
            assert isinstance(waiting, LateExchange)  # not a Docker stream of its own
            assert waiting.status == 200
            assert agent.service.calls.connections.in_use == 1  # the engine's wait
            reading = asyncio.create_task(waiting.body())
            await asyncio.sleep(0.1)
            assert not reading.done()  # the container still runs
            killed = await client.request("POST", f"/containers/{container_id}/kill")
            assert killed.status == 204
            answer = json.loads(await asyncio.wait_for(reading, 5))
            assert answer["StatusCode"] == 137
            assert agent.service.calls.connections.in_use == 0
    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["cancel", "reader cancelled"])
@pytest.mark.parametrize("link", [False, True], ids=["call stream", "call link"])
def test_a_wait_given_up_on_stops_on_the_agent(link, how):
    """The client went away: the agent cancels the call, which closes its runtime
    connection (a wait would otherwise hold one until the container exits). Either
    the exchange is cancelled (the relay's `finally`), or the task reading its body
    is (aiohttp cancels the handler of a client that hung up)."""
    async def scenario():
        async with served_agent(AgentService, link=link) as agent:
            client = agent.client
            await client.info()
            container_id = await _running(client, "abandoned")
            if link:
                await until(lambda: client.calls_carrier == "link")
            waiting = await _wait(client, container_id)
            await until(lambda: agent.service.calls.connections.in_use == 1)
            if how == "cancel":
                waiting.cancel()
            else:
                reading = asyncio.create_task(waiting.body())
                await asyncio.sleep(0.05)
                reading.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await reading
            await until(lambda: agent.service.calls.connections.in_use == 0)
            waiting.cancel()  # as the relay's `finally` does: nothing more happens
            if how == "cancel":
                assert await waiting.read() is None
            # The stream goes on: the next wait and call are answered on it.
            again = await _wait(client, container_id)
            inspect = await client.request("GET", f"/containers/{container_id}/json")
            assert json.loads(await inspect.body())["State"]["Running"] is True
            await client.request("POST", f"/containers/{container_id}/kill")
            assert json.loads(await asyncio.wait_for(again.body(), 5))["StatusCode"] == 137
    asyncio.run(scenario())


def test_an_agent_that_does_not_take_head_first_calls_gets_a_docker_stream():
    """Sent head-first to an agent that answers once, at the end, the head would come
    only with the exit, and `docker run` would never start its container."""
    async def scenario():
        async with served_agent(AgentBeforeHeadFirst) as agent:
            client = agent.client
            assert not (await client.info()).head_first_calls
            container_id = await _running(client, "older")
            waiting = await _wait(client, container_id)
            assert type(waiting) is DockerExchange and waiting.status == 200
            await client.request("POST", f"/containers/{container_id}/kill")
            assert json.loads(await asyncio.wait_for(waiting.body(), 5))["StatusCode"] == 137
    asyncio.run(scenario())


def test_a_wait_on_a_missing_container_fails_at_the_head():
    async def scenario():
        async with served_agent(AgentService) as agent:
            await agent.client.info()
            missing = await _wait(agent.client, "nosuch")
            assert missing.status == 404
            assert "nosuch" in json.loads(await missing.body())["message"]
            assert agent.service.calls.connections.in_use == 0
    asyncio.run(scenario())


class SlowWaitHeads(AgentService):
    """An agent whose runtime answers a wait's head only after HEAD_DELAY, and which
    notes in `order` when each call reaches the runtime and each wait's head is in."""

    HEAD_DELAY = 0.5

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.order: list[str] = []
        runtime_call = self.calls.call

        async def call(req, body, on_head=None):
            verb = req.path.rpartition("/")[2]
            self.order.append(f"{verb} sent")
            if verb != "wait" or on_head is None:
                return await runtime_call(req, body, on_head)
            await asyncio.sleep(self.HEAD_DELAY)

            def shown(head):
                self.order.append("wait head")
                on_head(head)
            return await runtime_call(req, body, shown)

        self.calls.call = call


@pytest.mark.parametrize("link", [False, True], ids=["call stream", "call link"])
def test_a_start_sent_right_after_a_wait_reaches_the_runtime_after_the_wait_s_head(link):
    """The manager answers a wait's head itself and sends the start the client then
    sends right behind the wait (AgentClient.send_head_first): the agent must hold that
    start until the runtime has the wait, or a container that exits at once would be
    waited for until its next exit (agent/wait_heads.py). Fails without the hold: the
    start reaches the runtime half a second before the wait's head."""
    async def scenario():
        async with served_agent(SlowWaitHeads, link=link) as agent:
            client = agent.client
            await client.info()
            body = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()
            created = await client.request("POST", "/containers/create", "name=held",
                                           [CONTENT_JSON], body, api_version="1.41")
            container_id = json.loads(await created.body())["Id"]
            if link:
                await until(lambda: client.calls_carrier == "link")
            sent = client.send_head_first("POST", f"/containers/{container_id}/wait",
                                          "condition=next-exit", api_version="1.41")
            assert sent is not None
            started = await client.request("POST", f"/containers/{container_id}/start")
            assert started.status == 204
            waiting = await asyncio.wait_for(sent.exchange(), 5)
            assert waiting.status == 200
            order = agent.service.order
            assert order.index("wait head") < order.index("start sent"), order
            assert len(agent.service.wait_heads) == 0
    asyncio.run(scenario())
