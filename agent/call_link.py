"""The call link: the agent's end of DockerCalls as plain frames on (mutual) TLS.

The manager sends most of its calls (create, start, inspect, stop...) as DockerCalls on
a gRPC stream, where a message costs each side about 45 µs of CPU against some 15 µs
for a length-prefixed frame on asyncio's own TLS transport (bench/grpc_floor.py): with
four messages per create+start, gRPC alone was a third of a hollow agent's cost. The
link carries the same TaggedDockerCall and TaggedDockerCallReply messages, answered by
the same code as the gRPC stream (call_stream.py), on a port of its own that the agent
names in NodeInfo.calls_address. A manager that cannot reach it uses DockerCalls.

The exchange (common/frames.py frames): the manager opens with
`flock-calls/1 <node ID>`; the agent answers `ok`, or `no <why>` and closes (another
node, or a caller without the manager role). Then each frame from the manager is a
TaggedDockerCall and each from the agent a TaggedDockerCallReply, in any order.

The link also takes the control calls (NodeInfo.link_control): Info, Heartbeat, and
Events, whose stream comes back as one reply per event under the subscription's tag.
With those here a manager needs nothing else from the node most of the time, and
closes its gRPC channel: one connection per node instead of two, which is what let
every node of 10,000 have a link under a 20,000 open-files limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import grpc
from cryptography import x509
from google.protobuf.message import DecodeError

from flock.agent.call_stream import (
    Answer,
    AnswerNow,
    CallRefused,
    answer_at_once,
    answer_one,
    failed_reply,
)
from flock.agent.metrics import status_name
from flock.certs.issue import roles_of
from flock.common.frames import HELLO, NO, OK, FramedProtocol, FrameError
from flock.protos import agent_pb2

log = logging.getLogger(__name__)

HELLO_TIMEOUT = 10.0  # seconds from the connection (and its TLS handshake) to the hello

ROLE = "manager"


class Control(Protocol):
    """The control calls of one node (agent/server.py AgentService); each fails with
    CallRefused, as over gRPC."""

    async def info(self) -> agent_pb2.NodeInfo: ...

    async def heartbeat(self, request: agent_pb2.HeartbeatRequest
                        ) -> agent_pb2.HeartbeatReply: ...

    def event_stream(self, request: agent_pb2.EventsRequest
                     ) -> AsyncIterator[agent_pb2.Event]: ...


class LinkedNode:
    """What the link answers for one node: its DockerCall handlers, and its control
    calls (None: the link refuses them, UNIMPLEMENTED)."""

    def __init__(self, answer: Answer, answer_now: AnswerNow | None = None,
                 control: Control | None = None) -> None:
        self.answer = answer
        self.answer_now = answer_now
        self.control = control


# The node a manager names in its hello, or None when this agent does not serve it.
Resolve = Callable[[str], Awaitable[LinkedNode | None]]
# Told of each call answered: its DockerRequest, the TaggedDockerCallReply, seconds
# (AgentMetrics.docker_call, as for a call on the gRPC stream).
Observe = Callable[[agent_pb2.DockerRequest, agent_pb2.TaggedDockerCallReply, float], None]
# Told of each control call over with: its gRPC method name, status name, seconds
# (AgentMetrics.rpc, as the gRPC interceptor tells it of the same call there).
ObserveRpc = Callable[[str, str, float], None]
METHODS = {"info": "Info", "heartbeat": "Heartbeat", "events": "Events"}


class CallLinkServer:
    """A listener for call links; `resolve` finds the node each manager names (one per
    agent; the hollow fleet serves all its nodes on one)."""

    def __init__(self, resolve: Resolve, tls: ssl.SSLContext | None = None,
                 observe: Observe | None = None,
                 observe_rpc: ObserveRpc | None = None) -> None:
        self._resolve = resolve
        self._tls = tls
        self.observe = observe
        self.observe_rpc = observe_rpc
        self._server: asyncio.Server | None = None
        self._links: set[_AgentEnd] = set()
        self.answered = 0  # calls answered over links since the start

    @property
    def connections(self) -> int:
        """Links open now (greeted or not)."""
        return len(self._links)

    async def start(self, host: str, port: int = 0) -> int:
        """Listen; the port bound. OSError (its strerror says why) when it cannot."""
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _AgentEnd(self), host, port, ssl=self._tls, reuse_address=True)
        except OSError as exc:
            if exc.errno:  # asyncio's text repeats the address the caller names anyway
                raise OSError(exc.errno, os.strerror(exc.errno)) from None
            raise
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for link in list(self._links):
            link.close()
        await self._server.wait_closed()
        self._server = None


class _AgentEnd(FramedProtocol):
    answers_wait_reads = True  # a manager that reads no answers is given no more work
    def __init__(self, server: CallLinkServer) -> None:
        super().__init__()
        self._server = server
        self._node: LinkedNode | None = None
        self._greeted = False
        self._running: dict[int, asyncio.Task] = {}  # by the manager's tag
        self._greeting: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._server._links.add(self)
        self._hello_timer = asyncio.get_running_loop().call_later(HELLO_TIMEOUT,
                                                                  self._no_hello)

    def _no_hello(self) -> None:
        if not self._greeted:  # a connection that says nothing holds nothing for long
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._hello_timer.cancel()
        self._server._links.discard(self)
        for task in [*self._running.values(), self._greeting]:
            if task is not None:
                task.cancel()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def frame_received(self, frame: bytes) -> None:
        node = self._node
        if node is None:
            self._hello(frame)
            return
        try:
            tagged = agent_pb2.TaggedDockerCall.FromString(frame)
        except DecodeError:
            raise FrameError("a frame that is not a TaggedDockerCall") from None
        if tagged.cancel:  # a head-first call or an event stream given up on
            if (task := self._running.pop(tagged.id, None)) is not None:
                task.cancel()
            return
        what = tagged.WhichOneof("what")
        if what != "call" and what is not None:
            self._control(node, tagged, what)
            return
        since = time.perf_counter() if self._server.observe is not None else 0.0
        if node.answer_now is not None and (done := answer_at_once(node.answer_now, tagged)):
            self._answered(tagged, done, since)
            return
        task = asyncio.get_running_loop().create_task(
            answer_one(node.answer, tagged, self._head_answered))
        self._running[tagged.id] = task
        task.add_done_callback(functools.partial(self._finished, tagged, since))

    def _control(self, node: LinkedNode, tagged: agent_pb2.TaggedDockerCall,
                 what: str) -> None:
        tag = tagged.id
        if node.control is None:
            self.write_frame(agent_pb2.TaggedDockerCallReply(
                id=tag, code=grpc.StatusCode.UNIMPLEMENTED.value[0],
                details=f"this link does not take {what}").SerializeToString())
            return
        work = (self._events(node.control, tag, tagged.events) if what == "events"
                else self._ask(node.control, tag, tagged, what))
        task = asyncio.get_running_loop().create_task(work)
        self._running[tag] = task
        task.add_done_callback(functools.partial(self._control_done, tag))

    def _control_done(self, tag: int, task: asyncio.Task) -> None:
        if self._running.get(tag) is task:
            del self._running[tag]

    def _observed(self, what: str, reply: agent_pb2.TaggedDockerCallReply | None,
                  since: float) -> None:
        """Count a control call over with (reply None: cancelled by the manager)."""
        if self._server.observe_rpc is not None:
            code = ("CANCELLED" if reply is None else
                    "OK" if not reply.code else status_name(reply.code))
            self._server.observe_rpc(METHODS[what], code, time.perf_counter() - since)

    async def _ask(self, control: Control, tag: int, tagged: agent_pb2.TaggedDockerCall,
                   what: str) -> None:
        """Info or Heartbeat, answered under its tag."""
        since = time.perf_counter()
        try:
            if what == "info":
                reply = agent_pb2.TaggedDockerCallReply(id=tag, info=await control.info())
            else:
                reply = agent_pb2.TaggedDockerCallReply(
                    id=tag, heartbeat=await control.heartbeat(tagged.heartbeat))
        except Exception as exc:  # noqa: BLE001 - that call's failure, not the link's
            reply = failed_reply(tag, exc, f"call link: {what}")
        self.write_frame(reply.SerializeToString())
        self._observed(what, reply, since)

    async def _events(self, control: Control, tag: int,
                      request: agent_pb2.EventsRequest) -> None:
        """Each event under the subscription's tag, until the stream ends (a reply with
        its status) or the manager cancels the tag."""
        since, end = time.perf_counter(), None
        try:
            async with contextlib.aclosing(control.event_stream(request)) as events:
                async for event in events:
                    self.write_frame(agent_pb2.TaggedDockerCallReply(
                        id=tag, event=event).SerializeToString())
            # A stream that ends without its reason still ends for the manager, who
            # would otherwise wait on it for good.
            raise CallRefused(grpc.StatusCode.UNAVAILABLE, "the event stream ended")
        except Exception as exc:  # noqa: BLE001 - the manager hears it, and subscribes again
            end = failed_reply(tag, exc, "call link: events")
            self.write_frame(end.SerializeToString())
        finally:
            self._observed("events", end, since)

    def _head_answered(self, reply: agent_pb2.TaggedDockerCallReply) -> None:
        self.write_frame(reply.SerializeToString())

    def _finished(self, tagged: agent_pb2.TaggedDockerCall, since: float,
                  task: asyncio.Task) -> None:
        if self._running.get(tagged.id) is task:
            del self._running[tagged.id]
        if not task.cancelled():
            self._answered(tagged, task.result(), since)

    def _answered(self, tagged: agent_pb2.TaggedDockerCall,
                  reply: agent_pb2.TaggedDockerCallReply, since: float) -> None:
        server = self._server
        server.answered += 1
        self.write_frame(reply.SerializeToString())
        if server.observe is not None:
            server.observe(tagged.call.request, reply, time.perf_counter() - since)

    def _hello(self, frame: bytes) -> None:
        if self._greeted or not frame.startswith(HELLO):
            raise FrameError("the link did not open with a hello")
        self._greeted = True
        self.transport.pause_reading()  # no call is taken before the answer
        why = self._refusal()
        if why:
            self._refuse(why)
            return
        node_id = frame[len(HELLO):].decode(errors="replace")
        self._greeting = asyncio.get_running_loop().create_task(self._greet(node_id))

    def _refusal(self) -> str:
        if self._server._tls is None:
            return ""
        ssl_object = self.transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        try:
            roles = roles_of(x509.load_der_x509_certificate(der)) if der else []
        except ValueError:
            roles = []
        if ROLE not in roles:
            return f"this agent answers only clients with the {ROLE} role"
        return ""

    async def _greet(self, node_id: str) -> None:
        try:
            node = await self._server._resolve(node_id)
        except Exception as exc:  # noqa: BLE001 - the manager hears why, and uses gRPC
            log.warning("call link: cannot tell whether node %s is served here: %s",
                        node_id, exc)
            self._refuse(f"cannot tell whether node {node_id} is served here: {exc}")
            return
        if node is None:
            self._refuse(f"node {node_id} is not served here")
            return
        self._node = node
        self.write_frame(OK)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _refuse(self, why: str) -> None:
        self.write_frame(NO + why.encode())
        self.close()
