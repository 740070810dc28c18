"""The control calls on the call link (NodeInfo.link_control): Info, Heartbeat and the
event stream go over the link once it is open, and the manager's gRPC channel to the
agent is closed while the link carries all it asks, so that a node costs one
connection. A real agent server and its link on loopback, the manager's AgentClient as
client; connections are counted in the kernel's own table (/proc/net/tcp)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from flock.agent.metrics import AgentMetrics
from flock.agent.runtimes.hollow.service import HollowAgentService
from flock.agent.server import AgentService
from flock.manager.cluster import agent_client
from flock.manager.cluster.agent_client import AgentClient, AgentUnavailable
from flock.manager.cluster.call_stream import StreamSlots
from flock.protos import agent_pb2
from tests.integration.test_call_link import _run
from tests.support.served_agent import ServedAgent, served_agent

ESTABLISHED = "01"


def connections_to(port: int) -> int:
    """Established TCP connections whose far end is `port` on this machine (the
    clients' ends of connections to a server on it)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if fields[3] == ESTABLISHED and int(fields[2].rsplit(":", 1)[1], 16) == port:
                    count += 1
    return count


def grpc_port(agent: ServedAgent) -> int:
    return int(agent.addr.rsplit(":", 1)[1])


async def until(check, seconds: float = 10.0, what: str = "") -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds}s: {what}")


@contextlib.asynccontextmanager
async def followed(client: AgentClient, **kwargs):
    """The client's events in a queue, followed by a task; the task, ended after."""
    events: asyncio.Queue = asyncio.Queue()

    async def follow() -> None:
        try:
            async for event in client.events(**kwargs):
                events.put_nowait(event)
        except AgentUnavailable as exc:
            events.put_nowait(exc)

    task = asyncio.create_task(follow())
    try:
        yield events, task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _event(events: asyncio.Queue) -> dict:
    event = await asyncio.wait_for(events.get(), 10)
    assert isinstance(event, dict), event
    return event


def test_info_heartbeat_and_events_go_over_the_link_and_the_channel_is_closed():
    metrics = AgentMetrics()

    async def main():
        async with served_agent(HollowAgentService, metrics=metrics, link=True,
                                slots=StreamSlots()) as agent:
            client, port = agent.client, grpc_port(agent)
            info = await client.info()  # the first, over gRPC: it names the link
            assert info.link_control and info.calls_address
            assert connections_to(port) == 1
            async with followed(client) as (events, _):
                await until(lambda: client.calls_carrier == "link", what="link open")
                await until(lambda: not client.channel_open and connections_to(port) == 0,
                            seconds=agent_client.CHANNEL_IDLE + 5, what="channel closed")
                beat = await client.heartbeat()
                assert beat.id == agent.runtime.core.engine_id
                assert (await client.info()).name == "calls"
                cid = await _run(client, "over-link")
                assert [(await _event(events))["status"] for _ in range(2)] == [
                    "create", "start"]
                assert not client.channel_open and connections_to(port) == 0
                # A Docker stream (logs) has gRPC alone: the channel opens for it, and
                # closes again once nothing is on it.
                logs = await client.request("GET", f"/containers/{cid}/logs", "stdout=1")
                assert logs.status == 200 and b"over-link" in await logs.body()
                del logs  # a call object held keeps its connection (gRPC's own rule)
                await until(lambda: not client.channel_open and connections_to(port) == 0,
                            seconds=agent_client.CHANNEL_IDLE + 5, what="closed again")
                assert (await client.heartbeat()).containers == 1

    asyncio.run(main())
    # Counted as the RPCs they stand for, over the link as over gRPC: two Infos (the
    # first over gRPC), two heartbeats, the event stream (cancelled when the follower
    # stopped), the logs' Docker stream.
    text = metrics.render()
    assert 'flock_agent_rpcs_total{method="Info",code="OK"} 2' in text
    assert 'flock_agent_rpcs_total{method="Heartbeat",code="OK"} 2' in text
    assert 'flock_agent_rpcs_total{method="Events",code="CANCELLED"} 1' in text
    assert 'flock_agent_rpcs_total{method="Docker",code="OK"} 1' in text


def test_an_event_stream_on_a_link_that_breaks_ends_as_unreachable_and_grpc_takes_over():
    async def main():
        async with served_agent(HollowAgentService, link=True, slots=StreamSlots()) as agent:
            client = agent.client
            await client.info()
            async with followed(client) as (events, task):
                await until(lambda: client.calls_carrier == "link", what="link open")
                await until(lambda: not client.channel_open, seconds=10, what="released")
                await agent.link.stop()  # the link breaks (its agent end closes)
                failure = await asyncio.wait_for(events.get(), 10)
                assert isinstance(failure, AgentUnavailable)
                assert f"Cannot reach agent {agent.addr}" in str(failure)
                assert "call link" in str(failure)
                await asyncio.wait_for(task, 5)
            # Nothing on the link any more: the heartbeat goes over gRPC, and answers.
            assert client.calls_carrier == ""
            assert (await client.heartbeat()).id == agent.runtime.core.engine_id
            assert client.channel_open

    asyncio.run(main())


def test_an_event_stream_the_manager_stops_following_stops_on_the_agent():
    async def main():
        async with served_agent(HollowAgentService, link=True, slots=StreamSlots()) as agent:
            client, bus = agent.client, agent.runtime.node.bus
            await client.info()
            async with followed(client):
                await until(lambda: len(bus.queues) == 1, what="subscribed on the agent")
                assert client.calls_carrier == "link"
            await until(lambda: not bus.queues, what="the agent's stream stopped")
            link = client._calls.open_link
            assert link is not None and not link.waiting  # nothing left on the link

    asyncio.run(main())


def test_the_end_of_the_runtime_s_event_stream_comes_over_the_link_with_its_reason():
    async def main():
        async with served_agent(HollowAgentService, link=True, slots=StreamSlots()) as agent:
            client = agent.client
            await client.info()
            async with followed(client) as (events, _):
                await until(lambda: len(agent.runtime.node.bus.queues) == 1, what="followed")
                agent.runtime.node.bus.closing.set()  # as when the runtime stops
                failure = await asyncio.wait_for(events.get(), 10)
            assert isinstance(failure, AgentUnavailable)
            assert "runtime event stream ended" in str(failure)
            assert client.calls_carrier == "link"  # the link itself goes on

    asyncio.run(main())


def test_a_heartbeat_the_agent_cannot_answer_fails_with_its_reason_over_the_link():
    """A real agent (AgentService) asks its runtime's socket for the heartbeat; with
    the runtime gone, the agent's reason comes back over the link as it would over
    gRPC, naming the agent."""
    async def main():
        async with served_agent(AgentService, link=True, slots=StreamSlots()) as agent:
            client = agent.client
            await client.info()
            async with followed(client):
                await until(lambda: client.calls_carrier == "link", what="link open")
                await agent.runtime.stop()
                with pytest.raises(AgentUnavailable) as caught:
                    await client.heartbeat()
            assert f"Cannot reach agent {agent.addr}" in str(caught.value)
            assert client.calls_carrier == "link"

    asyncio.run(main())


class AgentBeforeLinkControl(HollowAgentService):
    """An agent from before link_control: its link takes DockerCalls only."""

    def _with_spec(self, info):
        info = super()._with_spec(info)
        info.link_control = False
        return info


def test_an_agent_whose_link_takes_no_control_calls_is_followed_over_grpc():
    metrics = AgentMetrics()

    async def main():
        async with served_agent(AgentBeforeLinkControl, metrics=metrics, link=True,
                                slots=StreamSlots()) as agent:
            client, port = agent.client, grpc_port(agent)
            assert not (await client.info()).link_control
            async with followed(client) as (events, _):
                await _run(client, "over-grpc")
                assert client.calls_carrier == "link"  # its calls still take the link
                assert [(await _event(events))["status"] for _ in range(2)] == [
                    "create", "start"]
                await client.heartbeat()
                await asyncio.sleep(agent_client.CHANNEL_IDLE + 0.5)
                assert client.channel_open and connections_to(port) == 1

    asyncio.run(main())
    text = metrics.render()  # each over gRPC: counted by the gRPC server's interceptor
    assert 'flock_agent_rpcs_total{method="Heartbeat",code="OK"} 1' in text
    assert 'flock_agent_rpcs_total{method="Events",code="CANCELLED"} 1' in text


class AgentWithAShortStream(HollowAgentService):
    """An agent whose event stream ends after one event without saying why."""

    async def event_stream(self, request):
        yield agent_pb2.Event(json=b'{"status": "only", "id": "x", "time": 1}')


def test_an_event_stream_that_ends_without_a_reason_still_ends_for_the_manager():
    async def main():
        async with served_agent(AgentWithAShortStream, link=True,
                                slots=StreamSlots()) as agent:
            await agent.client.info()
            async with followed(agent.client) as (events, _):
                assert (await _event(events))["status"] == "only"
                failure = await asyncio.wait_for(events.get(), 10)
            assert isinstance(failure, AgentUnavailable)
            assert "the event stream ended" in str(failure)

    asyncio.run(main())
