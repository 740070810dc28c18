"""The Agent gRPC service: node facts, liveness, events, and the Docker API channel,
all answered from the runtime's Docker API endpoint (a unix socket, or a tcp:// engine
with TLS)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from flock.agent import call_stream, engine_api, http_bridge
from flock.agent.call_link import LinkedNode
from flock.agent.call_stream import CallRefused
from flock.agent.http_bridge import BridgeError
from flock.agent.later_reads import LaterReads
from flock.agent.metrics import AgentMetrics
from flock.agent.node_info import fetch_node_info
from flock.agent.node_spec import NodeSpecStore
from flock.agent.read_back import changed_ref, container_ref, read_back, read_container
from flock.agent.read_back_feed import ReadBackFeed
from flock.agent.reflected_events import ReflectedEvents
from flock.agent.runtimes.base import Runtime
from flock.agent.unary_calls import AnswerTooLarge, HeadReply, RuntimeCalls
from flock.agent.wait_heads import WaitHeads, held_ref, wait_ref
from flock.certs import Identity, RoleRequired, grpc_server_credentials
from flock.protos import agent_pb2, agent_pb2_grpc
from flock.protos.limits import MESSAGE_OPTIONS

log = logging.getLogger(__name__)

# Managers keep their channels alive with pings; allow them even between calls.
SERVER_OPTIONS = [
    *MESSAGE_OPTIONS,
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]


class AgentService(agent_pb2_grpc.AgentServicer):
    """One node's agent. `name` and `labels` are the --name/--label overrides;
    `state_dir` keeps the run-time node spec (UpdateNode) across restarts."""

    def __init__(self, runtime: Runtime, address: str, name: str | None = None,
                 labels: dict[str, str] | None = None, state_dir: Path | None = None) -> None:
        self.runtime = runtime
        self.address = address
        self.name = name
        self.labels = dict(labels or {})
        self.node_specs = NodeSpecStore(state_dir)
        self.calls = RuntimeCalls(runtime.endpoint) if runtime is not None else None
        self.read_backs = ReadBackFeed()
        self.reflected = ReflectedEvents()
        self.later_reads = LaterReads(self._read_later, self.read_backs.publish)
        self.wait_heads = WaitHeads()  # the waits a start must follow
        self.calls_address = ""  # where this node's call link listens (call_link.py)

    async def node_info(self) -> agent_pb2.NodeInfo:
        """The runtime's facts; engine_api.EngineError when it does not answer."""
        return await fetch_node_info(
            self.runtime.endpoint, runtime=self.runtime.name, address=self.address,
            name=self.name, extra_labels=self.labels,
        )

    # The control calls (Info, Heartbeat, Events) are answered here once, for gRPC
    # and for the call link alike (call_link.Control); a failure is CallRefused.
    async def info(self) -> agent_pb2.NodeInfo:
        try:
            info = await self.node_info()
        except engine_api.EngineError as exc:
            raise CallRefused(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        return self._with_spec(info)

    async def Info(self, request, context):  # noqa: N802 - gRPC method name
        try:
            return await self.info()
        except CallRefused as exc:
            await context.abort(exc.code, exc.details)

    async def UpdateNode(self, request, context):  # noqa: N802
        try:
            info = await self.node_info()
            spec = self.node_specs.update(info.id, dict(request.labels_add),
                                          list(request.labels_remove), request.availability)
        except engine_api.EngineError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except OSError as exc:
            await context.abort(grpc.StatusCode.INTERNAL,
                                f"cannot keep the node spec in {self.node_specs.folder}: {exc}")
        log.info("node %s: spec now %s", info.name, spec)
        return self._with_spec(info)

    def _with_spec(self, info: agent_pb2.NodeInfo) -> agent_pb2.NodeInfo:
        spec = self.node_specs.get(info.id)
        labels = spec.apply(dict(info.labels))
        info.ClearField("labels")
        info.labels.update(labels)
        info.availability = spec.availability
        info.calls_address = self.calls_address
        info.head_first_calls = True  # call_stream.serve and call_link take them
        info.link_control = bool(self.calls_address)  # call_link takes Info, Heartbeat, Events
        return info

    def linked(self) -> LinkedNode:
        """What the call link answers for this node: the DockerCalls handlers, and this
        service for the control calls."""
        return LinkedNode(self.docker_call, self.docker_call_now, control=self)

    async def resolve_link(self, node_id: str) -> LinkedNode | None:
        """call_link.Resolve for an agent serving one node: this one, if it is the
        node the manager names (the engine may have been replaced since it looked)."""
        info = await self.node_info()
        return self.linked() if info.id == node_id else None

    def note_refusal(self, request: agent_pb2.HeartbeatRequest) -> None:
        """A manager keeps this node out of its cluster (another node has its name):
        said in this agent's log, where whoever ran `flock join` looks."""
        if request.refused:
            log.error("the manager refuses this node: %s", request.refused)

    async def heartbeat(self, request: agent_pb2.HeartbeatRequest) -> agent_pb2.HeartbeatReply:
        self.note_refusal(request)
        try:
            info, _ = await engine_api.get_json(self.runtime.endpoint, "/info", timeout=5)
        except engine_api.EngineError as exc:
            raise CallRefused(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        return agent_pb2.HeartbeatReply(
            id=info.get("ID") or "", containers=int(info.get("Containers") or 0),
            images=int(info.get("Images") or 0), time=time.time(),
        )

    async def Heartbeat(self, request, context):  # noqa: N802
        try:
            return await self.heartbeat(request)
        except CallRefused as exc:
            await context.abort(exc.code, exc.details)

    async def event_stream(self, request: agent_pb2.EventsRequest
                           ) -> AsyncIterator[agent_pb2.Event]:
        """The runtime's events (and, asked for, the read-backs sent later) until the
        runtime ends its stream; then CallRefused(UNAVAILABLE), so that the manager
        subscribes again."""
        raw_events = engine_api.events(self.runtime.endpoint, request.since)
        try:
            with self.reflected.stream(request) as reflected:
                stream = (self.read_backs.merged(raw_events, reflected) if request.read_backs
                          else _as_events(raw_events))
                async with contextlib.aclosing(stream):
                    async for event in stream:
                        yield event
        except engine_api.EngineError as exc:
            raise CallRefused(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        raise CallRefused(grpc.StatusCode.UNAVAILABLE, "runtime event stream ended")

    async def Events(self, request, context):  # noqa: N802
        try:
            async with contextlib.aclosing(self.event_stream(request)) as events:
                async for event in events:
                    yield event
        except CallRefused as exc:
            await context.abort(exc.code, exc.details)

    async def DockerCall(self, request, context):  # noqa: N802
        try:
            return await self.docker_call(request)
        except CallRefused as exc:
            await context.abort(exc.code, exc.details)

    async def DockerCalls(self, request_iterator, context):  # noqa: N802
        async for answer in call_stream.serve(request_iterator, self.docker_call,
                                              self.docker_call_now):
            yield answer

    # A runtime that can answer a call without I/O (the hollow one, from memory) defines
    # this; without it, every call goes over the socket in a task of its own and no
    # call pays for a look that always says no.
    docker_call_now: call_stream.AnswerNow | None = None

    async def docker_call(self, request: agent_pb2.DockerCallRequest,
                          on_head: HeadReply | None = None) -> agent_pb2.DockerCallReply:
        """One DockerCall's answer, over the runtime's socket; CallRefused with the
        status the call ends with when there is none. A head-first call's head goes to
        `on_head` first (call_stream.answer_one). A wait's head, and a start's
        turn after the waits before it, go through wait_heads.py."""
        req = request.request
        if request.head_first and (ref := wait_ref(req)):
            headed = self.wait_heads.sent(ref)
            try:
                return await self._docker_call(request, _then(on_head, headed))
            finally:
                headed()
        if self.wait_heads and (ref := held_ref(req)):
            await self.wait_heads.before(ref)
        return await self._docker_call(request, on_head)

    async def _docker_call(self, request: agent_pb2.DockerCallRequest,
                           on_head: HeadReply | None) -> agent_pb2.DockerCallReply:
        later = (request.read_back and request.read_back_later
                 and self.read_backs.listened)
        try:
            with self.later_reads.changing(changed_ref(request.request)):
                reply = await self.calls.call(request.request, request.body, on_head)
                if later:
                    self._read_back_later(request.request, reply)
            if request.read_back and not later:
                read = await read_back(self.calls.call, request.request, reply)
                if read is not None and read.inspect:
                    self.reflected.note(request.events_token, read.id, read.read_at_ns)
            return reply
        except BridgeError as exc:
            raise CallRefused(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except AnswerTooLarge as exc:
            raise CallRefused(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
        except OSError as exc:  # ssl's errors and RuntimeGone among them
            raise CallRefused(grpc.StatusCode.UNAVAILABLE,
                              f"runtime at {self.runtime.endpoint} does not answer: "
                              f"{http_bridge.connect_failure(exc)}") from None

    def _read_back_later(self, req: agent_pb2.DockerRequest,
                         reply: agent_pb2.DockerCallReply) -> None:
        """Answer now; the container's read-back goes on the event streams that take
        them (read_back_feed.py), in full, a moment later: a change of the same
        container in the meantime (the start after a create) reads for both
        (later_reads.py). Begun after the answer is written in any case: a read
        begun first held every create and start 0.4-0.6 ms."""
        ref = container_ref(req, reply)
        if not ref:
            return
        reply.read_back_follows = True
        self.later_reads.schedule(req, ref)

    async def _read_later(self, req: agent_pb2.DockerRequest,
                          ref: str) -> agent_pb2.ContainerRead | None:
        return await read_container(self.calls.call, req, ref)

    async def Docker(self, request_iterator, context):  # noqa: N802
        frames = _TrackedFrames(request_iterator)
        exchange = http_bridge.forward(self.runtime.endpoint, frames)
        try:
            async with contextlib.aclosing(exchange):
                async for frame in exchange:
                    yield frame
        except http_bridge.BridgeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        # Ending the call before the manager has half-closed makes the manager's pending
        # half-close fail, and grpc's asyncio client then replaces the real status with
        # "INTERNAL: Internal error from Core" (grpc/grpc#36066). So the call ends only
        # after the manager's side has: a plain request half-closes once its body is
        # sent; a hijacked one, or one answered before its body was all read (the
        # runtime refused it early), is told the answer is over and cancels the call,
        # instead of sending the rest of a body nobody reads.
        if frames.hijack or not frames.ended:
            yield agent_pb2.DockerFrame(close_write=True)
        await frames.drain()


def _then(on_head: HeadReply | None, after: Callable[[], None]) -> HeadReply:
    """`on_head`, then `after`: the head is passed on before a held start goes."""
    def both(head: agent_pb2.DockerCallReply) -> None:
        if on_head is not None:
            on_head(head)
        after()
    return both


class _TrackedFrames:
    """The manager's frames, remembering whether its side of the stream has ended."""

    def __init__(self, frames) -> None:
        self._it = frames.__aiter__()
        self.ended = False
        self.hijack = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.ended:
            raise StopAsyncIteration
        try:
            frame = await anext(self._it)
        except StopAsyncIteration:
            self.ended = True
            raise
        if frame.WhichOneof("kind") == "request":
            self.hijack = frame.request.hijack
        return frame

    async def drain(self) -> None:
        while not self.ended:
            try:
                await self.__anext__()
            except StopAsyncIteration:
                return


async def _as_events(raw_events: AsyncIterator[bytes]) -> AsyncIterator[agent_pb2.Event]:
    async with contextlib.aclosing(raw_events):
        async for raw in raw_events:
            yield agent_pb2.Event(json=raw)


def make_server(service: AgentService, listen: str, tls: Identity | None = None,
                metrics: AgentMetrics | None = None) -> tuple[grpc.aio.Server, int]:
    """A gRPC server for `service` bound to `listen` ("host:port"); (server, bound port).
    With `tls`, mutual TLS: only callers with a client cert of the CA holding the manager
    role are answered. Every call is counted in `metrics` and logged with the manager's
    request ID (agent/metrics.py). ValueError when the address cannot be bound."""
    interceptors = [(metrics or AgentMetrics()).interceptor()]  # outermost: sees denials
    if tls is not None:
        interceptors.append(RoleRequired("manager"))
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors)
    agent_pb2_grpc.add_AgentServicer_to_server(service, server)
    try:
        if tls is not None:
            port = server.add_secure_port(listen, grpc_server_credentials(tls))
        else:
            port = server.add_insecure_port(listen)
    except RuntimeError as exc:
        raise ValueError(f"cannot listen on {listen}: {exc}") from exc
    if port == 0:
        raise ValueError(f"cannot listen on {listen}")
    return server, port
