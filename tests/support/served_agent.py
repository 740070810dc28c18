"""A real agent server on loopback in front of a hollow runtime, and the manager's
AgentClient for it, all in the test's own event loop: what the tests of the agent
protocol (DockerCall, the hollow agent's in-process answers, the manager's refresh
bursts) stand on, without an engine or a child process."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from flock.agent.call_link import CallLinkServer
from flock.agent.metrics import AgentMetrics
from flock.agent.runtimes.hollow.runtime import HollowRuntime
from flock.agent.server import AgentService, make_server
from flock.manager.cluster.agent_client import AgentClient
from flock.manager.cluster.call_stream import StreamSlots
from tests.conftest import free_port


class ServedAgent:
    """`service_class` (AgentService or a subclass, e.g. HollowAgentService) over a
    HollowRuntime named `name`, to be served on `addr`; `client` talks to it."""

    def __init__(self, service_class: type[AgentService], name: str,
                 metrics: AgentMetrics | None, slots: StreamSlots | None,
                 link: bool = False) -> None:
        self.runtime = HollowRuntime(node_name=name)
        self.addr = f"127.0.0.1:{free_port()}"
        self.service = service_class(self.runtime, self.addr, name)
        self.metrics = metrics
        self.server = None
        self.client = AgentClient(self.addr, stream_slots=slots)
        # With `link`, the agent's call link as `flock join` starts it (call_link.py).
        self.link = CallLinkServer(
            self.service.resolve_link,
            observe=metrics.docker_call if metrics is not None else None,
            observe_rpc=metrics.rpc if metrics is not None else None) if link else None

    async def serve(self) -> None:
        if self.link is not None:
            port = await self.link.start("127.0.0.1")
            self.service.calls_address = f"127.0.0.1:{port}"
        self.server, _ = make_server(self.service, self.addr, metrics=self.metrics)
        await self.server.start()


@contextlib.asynccontextmanager
async def served_agent(service_class: type[AgentService] = AgentService, name: str = "calls",
                       metrics: AgentMetrics | None = None,
                       slots: StreamSlots | None = None,
                       link: bool = False) -> AsyncIterator[ServedAgent]:
    """A ServedAgent, serving; afterwards client, servers, the service's calls and the
    runtime are closed in that order, so that no task outlives the loop."""
    agent = ServedAgent(service_class, name, metrics, slots, link)
    await agent.runtime.start()
    try:
        await agent.serve()
        yield agent
    finally:
        await agent.client.close()
        if agent.server is not None:
            await agent.server.stop(0)
        if agent.link is not None:
            await agent.link.stop()
        agent.service.later_reads.close()
        await agent.service.calls.close()
        await agent.runtime.stop()


@contextlib.asynccontextmanager
async def read_backs_followed(agent: ServedAgent) -> AsyncIterator[asyncio.Queue]:
    """The agent's read-backs sent later, as a manager following its events gets them
    (a queue of ReadBack), once the agent knows someone takes them."""
    reads: asyncio.Queue = asyncio.Queue()

    async def follow() -> None:
        async for _ in agent.client.events(read_backs=reads.put_nowait):
            pass

    follower = asyncio.create_task(follow())
    try:
        await until(lambda: agent.service.read_backs.listened)
        yield reads
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)


async def until(condition, timeout: float = 10) -> None:
    """Wait on the test's own loop until `condition()` holds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)
