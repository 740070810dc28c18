"""The agent service for hollow nodes: node facts, liveness, events and the short Docker
requests answered in process.

The manager calls Info and Heartbeat for every node every few seconds, and a create or
a start is a few DockerCalls each; answering them through the runtime's socket (an HTTP
round trip to an aiohttp app in this very process) was most of what a thousand hollow
agents cost. What the manager receives is the same as through the socket, which still
serves everything else (the Docker stream: logs, wait, attach, ...) and any request the
in-process path does not take (calls.py)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import grpc

from flock.agent.call_stream import CallRefused
from flock.agent.http_bridge import BridgeError, build_request_head
from flock.agent.node_info import build_node_info
from flock.agent.read_back import container_ref
from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.hollow import calls, shapes
from flock.agent.runtimes.hollow.api import info_body, version_body
from flock.agent.runtimes.hollow.runtime import HollowRuntime
from flock.agent.server import AgentService
from flock.agent.unary_calls import HeadReply
from flock.common import json_codec
from flock.protos import agent_pb2

_CLOSED = object()  # put in an Events queue when the runtime stops


class HollowAgentService(AgentService):
    runtime: HollowRuntime

    async def node_info(self) -> agent_pb2.NodeInfo:
        info = info_body(self.runtime.core)
        return build_node_info(info, version_body(), json.dumps(info).encode(),
                               runtime=self.runtime.name, address=self.address,
                               name=self.name, extra_labels=self.labels)

    async def heartbeat(self, request: agent_pb2.HeartbeatRequest) -> agent_pb2.HeartbeatReply:
        self.note_refusal(request)
        counts = self.runtime.node.counts()
        return agent_pb2.HeartbeatReply(id=self.runtime.core.engine_id,
                                        containers=counts["total"],
                                        images=len(self.runtime.node.images), time=time.time())

    async def docker_call(self, request: agent_pb2.DockerCallRequest,
                          on_head: HeadReply | None = None) -> agent_pb2.DockerCallReply:
        reply = self.docker_call_now(request)
        return reply if reply is not None else await super().docker_call(request, on_head)

    def docker_call_now(self, request: agent_pb2.DockerCallRequest
                        ) -> agent_pb2.DockerCallReply | None:
        """The node's answer from memory; None for what its socket answers (and what
        the bridge refuses: refused there, in the same words)."""
        try:
            build_request_head(request.request, "length", len(request.body))
        except BridgeError:
            return None
        reply = calls.answer(self.runtime.node, request.request, request.body)
        if reply is not None and request.read_back:
            reply = self._read_back(request.request, reply, request.events_token)
        return reply

    def _read_back(self, req: agent_pb2.DockerRequest, reply: agent_pb2.DockerCallReply,
                   events_token: str = "") -> agent_pb2.DockerCallReply:
        """agent/read_back.py's answer taken straight from the node's store: the inspect
        and list entry the socket would give, without answering two more requests."""
        ref = container_ref(req, reply)
        if not ref:
            return reply
        stamp = time.time_ns()
        try:
            container = self.runtime.node.get(ref)
        except ApiError:
            return reply
        reply.inspect = json_codec.dumps(shapes.inspect(container))
        reply.listing = json_codec.dumps([shapes.summary(container)])
        reply.read_at_ns = stamp
        self.reflected.note(events_token, container.id, stamp)
        return reply

    async def event_stream(self, request: agent_pb2.EventsRequest
                           ) -> AsyncIterator[agent_pb2.Event]:
        """The node's events from its bus, as the socket's /events would stream them:
        the kept ones since `since`, then each as it happens, until the runtime stops;
        on a named stream, without those its manager's read-backs already reflect
        (agent/reflected_events.py)."""
        bus = self.runtime.node.bus
        queue: asyncio.Queue = asyncio.Queue()
        bus.queues.add(queue)
        closing = asyncio.ensure_future(bus.closing.wait())
        closing.add_done_callback(lambda _: queue.put_nowait(_CLOSED))
        try:
            with self.reflected.stream(request) as reflected:
                if request.since > 0:
                    since = int(request.since * 1e9)
                    for event in list(bus.history):
                        if event["timeNano"] >= since:
                            yield agent_pb2.Event(json=json_codec.dumps(event))
                while (event := await queue.get()) is not _CLOSED:
                    if not (reflected and reflected.covers(event)):
                        yield agent_pb2.Event(json=json_codec.dumps(event))
        finally:
            bus.queues.discard(queue)
            closing.cancel()
        raise CallRefused(grpc.StatusCode.UNAVAILABLE, "runtime event stream ended")
