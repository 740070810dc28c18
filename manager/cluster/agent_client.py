"""The manager's end of the Agent protocol: one gRPC channel per agent, and its call link.

Failures to reach an agent surface as AgentUnavailable naming the address, so callers
can mark the node unhealthy and tell the user which machine is gone.

An agent whose call link takes the control calls (NodeInfo.link_control) is asked
everything there once the link is open: the short calls, Info, Heartbeat, and its event
stream. Its gRPC channel is then closed once no call on it has run for CHANNEL_IDLE
seconds, and opened again on the next use (an UpdateNode, a Docker stream: logs,
attach, a pull): a node costs the manager one connection, not two.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import grpc

from flock.common import json_codec
from flock.common.logs import METADATA_KEY, current_request_id
from flock.docker_compat.hop_headers import HOP_BY_HOP
from flock.manager.cluster.agent_errors import (  # noqa: F401 - imported from here too
    AgentError,
    AgentUnavailable,
    map_error,
    status_of,
)
from flock.manager.cluster.call_link import CallLink, EventFeed, LinkStream
from flock.manager.cluster.call_stream import (
    CallFailed,
    CallStream,
    HeadFirstCall,
    StreamSlots,
)
from flock.manager.cluster.exchanges import (  # noqa: F401 - imported from here too
    BufferedExchange,
    DockerExchange,
    LateExchange,
    ReadBack,
    frames_of,
)
from flock.protos import agent_pb2, agent_pb2_grpc
from flock.protos.limits import MESSAGE_OPTIONS

CHANNEL_OPTIONS = [
    *MESSAGE_OPTIONS,
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # A returning agent should be noticed within seconds, not gRPC's default 2 minutes.
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]
# Seconds without a gRPC call before the channel of an agent whose link carries all
# else is closed: long enough that a burst of uses (a connect's loads before the link
# opened) keeps one channel.
CHANNEL_IDLE = 2.0
# Told of each RPC: method name, seconds, whether it succeeded (the manager's metrics).
RpcObserver = Callable[[str, float, bool], None]


def _metadata() -> tuple[tuple[str, str], ...] | None:
    """The current request's ID for the agent's logs (common/logs.py), if inside one."""
    request_id = current_request_id()
    return ((METADATA_KEY, request_id),) if request_id else None


# Requests whose answers are short and never streamed: sent as one DockerCall.
_UNARY = re.compile(
    r"^(?:POST /containers/create"
    r"|POST /containers/[^/]+/(?:start|stop|restart|kill|pause|unpause|rename|update|resize)"
    r"|GET /containers/[^/]+/json|DELETE /containers/[^/]+|GET /containers/json"
    r"|GET /(?:_ping|version|info)|HEAD /_ping"
    r"|GET /images/json|GET /networks|GET /volumes)$")


def _passed_headers(response: agent_pb2.DockerResponse) -> list[tuple[str, str]]:
    """The answer's headers that go past one hop, as the handlers take them."""
    return [(h.name, h.value) for h in response.headers if h.name.lower() not in HOP_BY_HOP]


def is_unary(method: str, path: str, hijack: bool, body: object) -> bool:
    return (not hijack and (body is None or isinstance(body, bytes))
            and _UNARY.match(f"{method.upper()} {path}") is not None)


def _docker_request(method: str, path: str, query: str,
                    headers: list[tuple[str, str]] | None,
                    body: bytes | AsyncIterator[bytes] | None, api_version: str,
                    hijack: bool = False, request_id: str = "",
                    ) -> tuple[agent_pb2.DockerRequest, bytes | AsyncIterator[bytes] | None]:
    """The request as the agent takes it, and its body (bytes made of a buffer)."""
    headers = list(headers or [])
    if isinstance(body, bytes | bytearray | memoryview):
        body = bytes(body)
        headers = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
        headers.append(("Content-Length", str(len(body))))
    elif body is not None and hijack:
        raise TypeError("the body of a hijacked request must be bytes")
    elif body is None:
        headers = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]
    req = agent_pb2.DockerRequest(
        method=method, path=path, query=query, api_version=api_version, hijack=hijack,
        request_id=request_id or current_request_id())
    add = req.headers.add  # half the cost of a list of Header messages, per create
    for name, value in headers:
        add(name=name, value=value)
    return req, body


class SentCall:
    """A head-first call on its way (AgentClient.send_head_first): its exchange once
    the head is in, or given up on."""

    def __init__(self, call: HeadFirstCall,
                 late: Callable[[HeadFirstCall], Awaitable[LateExchange]]) -> None:
        self._call = call
        self._late = late  # AgentClient._late_exchange: the head awaited, timed, mapped

    async def exchange(self) -> LateExchange:
        return await self._late(self._call)

    def cancel(self) -> None:
        self._call.cancel()


class AgentClient:
    """The Agent service of one agent at `addr` ("host:port")."""

    def __init__(self, addr: str, credentials: grpc.ChannelCredentials | None = None,
                 observer: RpcObserver | None = None,
                 stream_slots: StreamSlots | None = None,
                 link_tls: ssl.SSLContext | None = None) -> None:
        self.addr = addr
        self._credentials = credentials
        self._link_tls = link_tls  # the call link's TLS: our client cert, the agents' CA
        self._observer = observer
        self._slots = stream_slots  # shared with the other agents' clients
        self._channel: grpc.aio.Channel | None = None
        self._stub: agent_pb2_grpc.AgentStub | None = None
        self._unary = True  # DockerCall for short requests, until the agent says no
        # Their stream (or link), until the agent says no; it outlives the channel.
        self._calls: CallStream | None = CallStream(self._open_calls, stream_slots)
        self._head_first = False  # whether the agent takes head-first calls (NodeInfo)
        self._link_control = False  # whether its link takes Info, Heartbeat, Events
        self._events_on_link = 0  # event streams followed over the link now
        self._grpc_calls = 0  # gRPC calls under way on the channel
        self._release_timer: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task] = set()  # channels released, being closed
        # The name of this manager's event stream from the agent (events() with
        # read_backs), sent with every DockerCall: the agent then leaves out of that
        # stream the events the call's read-back already reflects.
        self.events_token = ""

    @property
    def stub(self) -> agent_pb2_grpc.AgentStub:
        """Created on first use, inside the event loop that will run the calls, and
        again after the channel was released."""
        if self._stub is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.addr, options=CHANNEL_OPTIONS)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.addr, self._credentials, options=CHANNEL_OPTIONS)
            self._stub = agent_pb2_grpc.AgentStub(self._channel)
        return self._stub

    @property
    def channel_open(self) -> bool:
        """Whether this client holds a gRPC channel (a connection) to the agent now."""
        return self._channel is not None

    def _open_calls(self, requests: AsyncIterator[agent_pb2.TaggedDockerCall]
                    ) -> grpc.aio.StreamStreamCall:
        return self._track(self.stub.DockerCalls(requests))

    def _track(self, call):
        """Count `call` as under way on the channel until it is over: the channel is
        released only when none is."""
        self._grpc_calls += 1
        call.add_done_callback(self._grpc_call_done)
        return call

    def _grpc_call_done(self, _call) -> None:
        self._grpc_calls -= 1
        if not self._grpc_calls:
            self._arm_release()

    def _arm_release(self) -> None:
        if (self._release_timer is None and self._channel is not None
                and self._link_control and self._events_on_link):
            self._release_timer = asyncio.get_running_loop().call_later(
                CHANNEL_IDLE, self._release)

    def _release(self) -> None:
        """Close the channel if the link carries all this client asks and no call is on
        the channel; the next gRPC call opens another."""
        self._release_timer = None
        link_carries = (self._link_control and self._events_on_link
                        and self._calls is not None and self._calls.open_link is not None)
        if self._grpc_calls or self._channel is None or not link_carries:
            return
        channel, self._channel, self._stub = self._channel, None, None
        task = asyncio.get_running_loop().create_task(channel.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _link_for_control(self) -> LinkStream | None:
        """The open link, if it takes the control calls."""
        if not self._link_control or self._calls is None:
            return None
        return self._calls.open_link

    async def _ask_link(self, link: LinkStream, what: str, request, timeout: float):
        """A control call over the link: its answer, or the AgentError it failed with."""
        tag = self._calls.tag()
        answer = link.send_control(tag, what, request)
        try:
            return await asyncio.wait_for(answer, timeout)
        except TimeoutError:
            raise self._error(CallFailed(grpc.StatusCode.DEADLINE_EXCEEDED, ""),
                              timeout) from None
        except CallFailed as err:
            raise self._error(err, timeout) from None
        finally:
            link.waiting.pop(tag, None)

    @property
    def calls_carrier(self) -> str:
        """What the short calls travel on now: "link" (the agent's call link), "stream"
        (DockerCalls), or "" (neither is open: the next opens one, or goes unary)."""
        return self._calls.carrier if self._calls is not None else ""

    @property
    def call_link(self) -> CallLink | None:
        """The agent's call link as its NodeInfo names it, if it does."""
        return self._calls.link if self._calls is not None else None

    def _error(self, err: grpc.aio.AioRpcError | CallFailed,
               timeout: float | None = None) -> AgentError:
        return map_error(self.addr, err, timeout, tls=self._credentials is not None)

    @contextlib.contextmanager
    def _timed(self, method: str) -> Iterator[None]:
        """Report the RPC inside to the observer (ok unless it raised)."""
        if self._observer is None:
            yield
            return
        start, ok = time.perf_counter(), False
        try:
            yield
            ok = True
        finally:
            self._observer(method, time.perf_counter() - start, ok)

    async def info(self, timeout: float = 10) -> agent_pb2.NodeInfo:
        if (link := self._link_for_control()) is not None:
            with self._timed("Info"):
                info = await self._ask_link(link, "info", agent_pb2.InfoRequest(), timeout)
        else:
            try:
                with self._timed("Info"):
                    info = await self._track(self.stub.Info(
                        agent_pb2.InfoRequest(), timeout=timeout, metadata=_metadata()))
            except grpc.aio.AioRpcError as err:
                raise self._error(err, timeout) from None
        self._note_link(info)
        return info

    def _note_link(self, info: agent_pb2.NodeInfo) -> None:
        """Send the calls over the agent's call link from now on, if it names one."""
        self._head_first = info.head_first_calls
        self._link_control = info.link_control and bool(info.calls_address)
        calls = self._calls
        if calls is None:
            return
        if not info.calls_address:
            calls.link = None
        elif calls.link is None or not calls.link.same(info.calls_address, info.id):
            calls.link = CallLink(info.calls_address, info.id, self._link_tls)

    async def update_node(self, add: dict[str, str], remove: list[str], availability: str = "",
                          timeout: float = 10) -> agent_pb2.NodeInfo:
        """Change the node's run-time labels/availability; the agent keeps them."""
        request = agent_pb2.UpdateNodeRequest(labels_add=add, labels_remove=remove,
                                              availability=availability)
        try:
            with self._timed("UpdateNode"):
                return await self._track(self.stub.UpdateNode(request, timeout=timeout,
                                                              metadata=_metadata()))
        except grpc.aio.AioRpcError as err:
            raise self._error(err, timeout) from None

    async def heartbeat(self, timeout: float = 5, refused: str = "") -> agent_pb2.HeartbeatReply:
        """`refused`: why this manager keeps the node out of its cluster (the agent logs it)."""
        request = agent_pb2.HeartbeatRequest(refused=refused)
        if (link := self._link_for_control()) is not None:
            with self._timed("Heartbeat"):
                return await self._ask_link(link, "heartbeat", request, timeout)
        try:
            with self._timed("Heartbeat"):
                return await self._track(self.stub.Heartbeat(request, timeout=timeout,
                                                             metadata=_metadata()))
        except grpc.aio.AioRpcError as err:
            raise self._error(err, timeout) from None

    async def events(self, since: float = 0,
                     read_backs: Callable[[ReadBack], None] | None = None
                     ) -> AsyncIterator[dict]:
        """The node's Docker events as parsed objects, until the stream breaks
        (AgentUnavailable) or the caller stops iterating. With `read_backs`, the
        containers the agent read back after this manager's changes are handed to it
        as they come (DockerCallRequest.read_back_later), and the stream is named
        (`events_token`): the agent leaves out of it the events that this manager's
        read-backs already reflect (agent/reflected_events.py)."""
        token = uuid.uuid4().hex if read_backs is not None else ""
        request = agent_pb2.EventsRequest(since=since, read_backs=read_backs is not None,
                                          token=token)
        link = (await self._calls.ready_link()
                if self._link_control and self._calls is not None else None)
        stream = (self._events_over_link(link, request) if link is not None
                  else self._events_over_grpc(request))
        if token:
            self.events_token = token
        try:
            async with contextlib.aclosing(stream):
                async for event in stream:
                    if event.HasField("read_back"):
                        if read_backs is not None:
                            read = event.read_back
                            read_backs(ReadBack(read.inspect, read.listing, read.read_at_ns))
                        continue
                    yield json_codec.loads(event.json)
        finally:
            if token and self.events_token == token:
                self.events_token = ""

    async def _events_over_grpc(self, request: agent_pb2.EventsRequest
                                ) -> AsyncIterator[agent_pb2.Event]:
        call = self._track(self.stub.Events(request, metadata=_metadata()))
        try:
            async for event in call:
                yield event
        except grpc.aio.AioRpcError as err:
            raise self._error(err) from None
        finally:
            call.cancel()

    async def _events_over_link(self, link: LinkStream, request: agent_pb2.EventsRequest
                                ) -> AsyncIterator[agent_pb2.Event]:
        """The event stream as an EventFeed on the link; while it is followed, the
        channel may be released."""
        tag = self._calls.tag()
        feed = link.send_control(tag, "events", request, EventFeed())
        self._events_on_link += 1
        self._arm_release()
        try:
            while True:
                try:
                    event = await feed.next()
                except CallFailed as err:
                    raise self._error(err) from None
                yield event
        finally:
            self._events_on_link -= 1
            if link.waiting.pop(tag, None) is not None and not feed.done():
                link.cancel(tag)

    async def request(
        self, method: str, path: str, query: str = "",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | AsyncIterator[bytes] | None = None,
        api_version: str = "", hijack: bool = False, request_id: str = "",
        read_back: bool = False, read_back_later: bool = False, head_first: bool = False,
    ) -> DockerExchange:
        """Send one Docker API request; returns once the answer's head is in.

        `read_back` asks the agent to return the container a successful change was
        about with the answer (the exchange's `read_back`); only a DockerCall can, so
        a request that goes over the stream comes back without it. With
        `read_back_later` (for changes whose outcome the manager can write without the
        read, records.py), an agent whose events this manager follows with `read_backs`
        answers at once and sends the read-back there instead: the exchange then has
        none either.

        `head_first`: a bodiless request whose small answer may be long in coming (a
        wait) goes as a head-first call on the call stream when the agent takes them,
        so that its head is in as soon as the runtime sends it, at a call's cost rather
        than a new Docker stream's.

        A bytes body travels with its Content-Length; an async iterator body is sent
        chunked unless `headers` carry a Content-Length. A hijacked request's body (e.g.
        exec start's JSON) must be bytes, since what follows it is the raw stream.
        """
        req, body = _docker_request(method, path, query, headers, body, api_version, hijack,
                                    request_id)
        if self._unary and is_unary(method, path, hijack, body):
            exchange = await self._call(req, body or b"", read_back, read_back_later)
            if exchange is not None:
                return exchange
        elif head_first and body is None and not hijack:
            sent = self._send_head_first(req)
            if sent is not None:
                return await self._late_exchange(sent)
        return await self._stream(req, method, path, body, hijack)

    def send_head_first(self, method: str, path: str, query: str = "",
                        headers: list[tuple[str, str]] | None = None,
                        api_version: str = "") -> SentCall | None:
        """Send a bodiless head-first call (a wait) now, and return without waiting for
        its head (`await sent.exchange()` has it); None when the call stream cannot take
        it (the caller then uses request(head_first=True)).

        The call is on the agent's ordered call stream when this returns, so any call
        sent after it reaches the agent after it: what lets the manager answer a wait's
        head before the engine has (api/docker/containers.wait), while the agent holds
        a start behind the engine's head of that wait (agent/wait_heads.py)."""
        req, _ = _docker_request(method, path, query, headers, None, api_version)
        call = self._send_head_first(req)
        return None if call is None else SentCall(call, self._late_exchange)

    async def _stream(self, req: agent_pb2.DockerRequest, method: str, path: str,
                      body: bytes | AsyncIterator[bytes] | None,
                      hijack: bool) -> DockerExchange:
        """The request on a Docker stream of its own (gRPC), once its head is in."""
        call = self._track(self.stub.Docker(metadata=_metadata()))
        body_task = None
        try:
            with self._timed("Docker"):
                await call.write(agent_pb2.DockerFrame(request=req))
                if hijack:
                    for frame in frames_of(body or b""):
                        await call.write(frame)
                elif body is None:
                    await call.done_writing()
                else:
                    body_task = asyncio.create_task(_send_body(call, body))
                head = await call.read()
        except grpc.aio.AioRpcError as err:
            _stop(call, body_task)
            raise self._error(err) from None
        except BaseException:
            _stop(call, body_task)
            raise
        if head is grpc.aio.EOF or head.WhichOneof("kind") != "response":
            _stop(call, body_task)
            raise AgentError(f"Agent {self.addr} ended {method} {path} without an answer")
        answer = _passed_headers(head.response)
        return DockerExchange(self.addr, call, head.response.status, answer, body_task)

    async def _call(self, req: agent_pb2.DockerRequest, body: bytes, read_back: bool = False,
                    read_back_later: bool = False) -> BufferedExchange | None:
        """One DockerCall (on the agent's call stream when it has one); None when the
        Docker stream must do it (an agent without DockerCall, or an answer too large
        for one message)."""
        # Timed inline rather than with _timed: this is the hot path of every create and
        # start, and a generator-based context manager costs as much as the rest here.
        observer, start, ok = self._observer, time.perf_counter(), False
        request = agent_pb2.DockerCallRequest(request=req, body=body, read_back=read_back,
                                              read_back_later=read_back_later,
                                              events_token=self.events_token)
        try:
            reply = await self._call_once(request)
            ok = True
        except (grpc.aio.AioRpcError, CallFailed) as err:
            code, _ = status_of(err)
            if code == grpc.StatusCode.UNIMPLEMENTED:
                self._unary = False  # an older agent: streams from now on
                return None
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return None
            raise self._error(err) from None
        finally:
            if observer is not None:
                observer("DockerCall", time.perf_counter() - start, ok)
        answer = _passed_headers(reply.response)
        read = (ReadBack(reply.inspect, reply.listing, reply.read_at_ns)
                if reply.inspect or reply.listing else None)
        return BufferedExchange(self.addr, reply.response.status, answer, reply.body, read)

    def _send_head_first(self, req: agent_pb2.DockerRequest) -> HeadFirstCall | None:
        """The head-first call, sent; None when the Docker stream must carry it (an
        agent that does not take head-first calls, or no room for a call stream)."""
        calls = self._calls
        if not (self._head_first and self._unary and calls is not None and calls.has_room()):
            return None
        return calls.head_first(agent_pb2.DockerCallRequest(
            request=req, head_first=True, events_token=self.events_token))

    async def _late_exchange(self, call: HeadFirstCall) -> LateExchange:
        """A sent head-first call's exchange, once its head is in."""
        observer, start, ok = self._observer, time.perf_counter(), False
        try:
            head = await call.head()
            ok = True
        except CallFailed as err:
            raise self._error(err) from None
        finally:
            if observer is not None:
                observer("DockerCall", time.perf_counter() - start, ok)
        answer = _passed_headers(head.response)
        return LateExchange(self.addr, head.response.status, answer, call, self._error)

    async def _call_once(self, request: agent_pb2.DockerCallRequest
                         ) -> agent_pb2.DockerCallReply:
        """On the call stream; unary for an agent from before DockerCalls, or while
        the manager has as many streams open as it keeps (call_stream.StreamSlots)."""
        calls = self._calls
        if calls is not None and calls.has_room():
            try:
                return await calls.call(request)
            except CallFailed as err:
                if err.code != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._calls = None  # this agent answers DockerCall only (its stream is over)
        return await self._track(self.stub.DockerCall(request, metadata=_metadata()))

    async def request_json(
        self, method: str, path: str, query: str = "", body: object | None = None,
        timeout: float = 30,
    ) -> tuple[int, object]:
        """(status, parsed JSON or None for an empty answer; text that is not JSON
        comes back as a str)."""
        raw = None if body is None else json_codec.dumps(body)
        headers = [] if raw is None else [("Content-Type", "application/json")]
        exchange: DockerExchange | None = None

        async def run() -> tuple[int, bytes]:
            nonlocal exchange
            exchange = await self.request(method, path, query, headers, raw)
            return exchange.status, await exchange.body()

        try:
            status, answer = await asyncio.wait_for(run(), timeout)
        except TimeoutError:
            if exchange is not None:
                exchange.cancel()
            raise AgentUnavailable(
                f"Cannot reach agent {self.addr}: no answer to {method} {path} in {timeout}s"
            ) from None
        if not answer.strip():
            return status, None
        try:
            return status, json_codec.loads(answer)
        except ValueError:
            return status, answer.decode(errors="replace")

    async def close(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        if self._calls is not None:
            await self._calls.close()
            self._calls = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _send_body(call, body: bytes | AsyncIterator[bytes]) -> None:
    """Stream a request body; a failure here shows up on the answer side."""
    try:
        if isinstance(body, bytes):
            for frame in frames_of(body):
                await call.write(frame)
        else:
            async for chunk in body:
                for frame in frames_of(bytes(chunk)):
                    await call.write(frame)
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        pass


def _stop(call, body_task: asyncio.Task | None) -> None:
    if body_task is not None:
        body_task.cancel()
    call.cancel()
