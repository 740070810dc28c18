"""The manager's end of the Agent protocol: one gRPC channel per agent.

Failures to reach an agent surface as AgentUnavailable naming the address, so callers
can mark the node unhealthy and tell the user which machine is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import grpc

from flock.common import json_codec
from flock.common.logs import METADATA_KEY, current_request_id
from flock.docker_compat.hop_headers import HOP_BY_HOP
from flock.manager.cluster.call_link import CallLink
from flock.manager.cluster.call_stream import CallFailed, CallStream, StreamSlots
from flock.protos import agent_pb2, agent_pb2_grpc
from flock.protos.limits import MAX_FRAME, MESSAGE_OPTIONS

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
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# Told of each RPC: method name, seconds, whether it succeeded (the manager's metrics).
RpcObserver = Callable[[str, float, bool], None]


def _metadata() -> tuple[tuple[str, str], ...] | None:
    """The current request's ID for the agent's logs (common/logs.py), if inside one."""
    request_id = current_request_id()
    return ((METADATA_KEY, request_id),) if request_id else None


class AgentError(Exception):
    """The agent answered with an error of its own (not a Docker API error); `code` is
    the gRPC status it gave, when it gave one, for callers that pass it on."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class AgentUnavailable(AgentError):  # noqa: N818 - the name is part of the contract
    """The agent cannot be reached; the message names it and says why."""


# What gRPC's TLS failures mean for the person reading `docker info`.
_TLS_REASONS = (
    ("hostname verification", "TLS: the agent's certificate does not name the address "
                              "discovery announced"),
    ("certificate_verify_failed", "TLS: the agent's certificate is not signed by this "
                                  "manager's CA (--agent-tlscacert)"),
    ("wrong_version_number", "TLS: the agent does not speak TLS (start it with --tlsverify, "
                             "or run the manager without agent TLS)"),
)


def _reason(code: grpc.StatusCode, details: str, timeout: float | None = None,
            tls: bool = False) -> str:
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"no answer in {timeout}s" if timeout else "no answer in time"
    details = details or code.name
    lowered = details.lower()
    for known, reason in _TLS_REASONS:
        if known in lowered:
            return reason
    if tls and "socket closed" in lowered:
        return ("socket closed (with TLS this usually means the agent does not accept "
                "this manager's certificate: another CA, or no manager role)")
    for known in ("connection refused", "no route to host", "connection reset",
                  "name resolution", "dns resolution failed", "socket closed"):
        if known in lowered:
            return known
    return details


def _status(err: grpc.aio.AioRpcError | CallFailed) -> tuple[grpc.StatusCode, str]:
    """(code, details) of a unary call's error or of a call on the call stream."""
    if isinstance(err, CallFailed):
        return err.code, err.details
    return err.code(), err.details()


def map_error(addr: str, err: grpc.aio.AioRpcError | CallFailed,
              timeout: float | None = None, tls: bool = False) -> AgentError:
    """AgentUnavailable for UNAVAILABLE/DEADLINE_EXCEEDED, AgentError otherwise."""
    code, details = _status(err)
    if code in _UNREACHABLE:
        return AgentUnavailable(
            f"Cannot reach agent {addr}: {_reason(code, details, timeout, tls)}", code)
    return AgentError(f"Agent {addr} failed: {code.name}: {details}", code)


def _frames(data: bytes) -> list[agent_pb2.DockerFrame]:
    view = memoryview(data)
    return [agent_pb2.DockerFrame(data=bytes(view[i:i + MAX_FRAME]))
            for i in range(0, len(view), MAX_FRAME)]


@dataclass(frozen=True)
class ReadBack:
    """The container an answered change was about, as the agent read it right after
    (DockerCallRequest.read_back): its inspect and list answers, unparsed, and the
    agent's clock when it read. An inspect that would have waited for the engine's lock
    on the container is left out (agent/read_back.py): then only the list answer is
    there, and it is not exact enough to stand for a full read."""
    inspect: bytes
    listing: bytes
    read_at_ns: int


class DockerExchange:
    """One Docker API exchange in flight: the answer's head is known, its body streams."""

    read_back: ReadBack | None = None  # only a DockerCall asked to read back has one

    def __init__(self, addr: str, call, status: int, headers: list[tuple[str, str]],
                 body_task: asyncio.Task | None) -> None:
        self.addr = addr
        self.status = status
        self.headers = headers
        self._call = call
        self._body_task = body_task
        self._write_lock = asyncio.Lock()
        self._done = False
        self._cancelled = False

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    async def read(self) -> bytes | None:
        """The next chunk of the answer, None at its end."""
        while not self._done:
            try:
                frame = await self._call.read()
            except grpc.aio.AioRpcError as err:
                self._done = True
                if self._cancelled or err.code() == grpc.StatusCode.CANCELLED:
                    return None
                raise map_error(self.addr, err) from None
            except asyncio.CancelledError:
                if self._cancelled:
                    self._done = True
                    return None
                raise
            if frame is grpc.aio.EOF or frame.WhichOneof("kind") == "close_write":
                self._done = True
                return None
            if frame.WhichOneof("kind") == "data" and frame.data:
                return frame.data
        return None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while (chunk := await self.read()) is not None:
            yield chunk

    async def body(self) -> bytes:
        """The whole (rest of the) answer."""
        return b"".join([chunk async for chunk in self])

    async def write(self, data: bytes) -> None:
        """Hijacked: bytes to the container."""
        async with self._write_lock:
            try:
                for frame in _frames(data):
                    await self._call.write(frame)
            except grpc.aio.AioRpcError as err:
                raise map_error(self.addr, err) from None
            except asyncio.InvalidStateError:
                raise AgentError(f"Agent {self.addr}: the exchange is already over") from None

    async def close_write(self) -> None:
        """Hijacked: half-close towards the container (stdin EOF); output still flows."""
        async with self._write_lock:
            # The end of the stream is the half-close: one operation, so there is no
            # window in which the agent can finish between two of them (grpc#36066).
            with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
                await self._call.done_writing()

    def cancel(self) -> None:
        """The client went away: abort the call; the agent closes the runtime connection."""
        self._cancelled = True
        if self._body_task is not None:
            self._body_task.cancel()
        self._call.cancel()


class BufferedExchange(DockerExchange):
    """An exchange whose whole answer came in one DockerCall reply."""

    def __init__(self, addr: str, status: int, headers: list[tuple[str, str]],
                 data: bytes, read_back: ReadBack | None = None) -> None:
        self.addr, self.status, self.headers = addr, status, headers
        self._data: bytes | None = data
        self.read_back = read_back

    async def read(self) -> bytes | None:
        data, self._data = self._data, None
        return data or None

    async def write(self, data: bytes) -> None:
        raise AgentError(f"Agent {self.addr}: the exchange is already over")

    async def close_write(self) -> None:
        return None

    async def body(self) -> bytes:
        # Without the async generator DockerExchange.body iterates: the loop registers
        # each one it sees start (a weak set entry and its removal), three per create+start.
        return await self.read() or b""

    def cancel(self) -> None:
        self._data = None


# Requests whose answers are short and never streamed: sent as one DockerCall.
_UNARY = re.compile(
    r"^(?:POST /containers/create"
    r"|POST /containers/[^/]+/(?:start|stop|restart|kill|pause|unpause|rename|update|resize)"
    r"|GET /containers/[^/]+/json|DELETE /containers/[^/]+|GET /containers/json"
    r"|GET /(?:_ping|version|info)|HEAD /_ping"
    r"|GET /images/json|GET /networks|GET /volumes)$")


def is_unary(method: str, path: str, hijack: bool, body: object) -> bool:
    return (not hijack and (body is None or isinstance(body, bytes))
            and _UNARY.match(f"{method.upper()} {path}") is not None)


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
        self._calls: CallStream | None = None  # their stream, until the agent says no
        # The name of this manager's event stream from the agent (events() with
        # read_backs), sent with every DockerCall: the agent then leaves out of that
        # stream the events the call's read-back already reflects.
        self.events_token = ""

    @property
    def stub(self) -> agent_pb2_grpc.AgentStub:
        """Created on first use, inside the event loop that will run the calls."""
        if self._stub is None:
            if self._credentials is None:
                self._channel = grpc.aio.insecure_channel(self.addr, options=CHANNEL_OPTIONS)
            else:
                self._channel = grpc.aio.secure_channel(
                    self.addr, self._credentials, options=CHANNEL_OPTIONS)
            self._stub = agent_pb2_grpc.AgentStub(self._channel)
            self._calls = CallStream(self._stub.DockerCalls, self._slots)
        return self._stub

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
        try:
            with self._timed("Info"):
                info = await self.stub.Info(agent_pb2.InfoRequest(), timeout=timeout,
                                            metadata=_metadata())
        except grpc.aio.AioRpcError as err:
            raise self._error(err, timeout) from None
        self._note_link(info)
        return info

    def _note_link(self, info: agent_pb2.NodeInfo) -> None:
        """Send the calls over the agent's call link from now on, if it names one."""
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
                return await self.stub.UpdateNode(request, timeout=timeout, metadata=_metadata())
        except grpc.aio.AioRpcError as err:
            raise self._error(err, timeout) from None

    async def heartbeat(self, timeout: float = 5, refused: str = "") -> agent_pb2.HeartbeatReply:
        """`refused`: why this manager keeps the node out of its cluster (the agent logs it)."""
        try:
            with self._timed("Heartbeat"):
                return await self.stub.Heartbeat(agent_pb2.HeartbeatRequest(refused=refused),
                                                 timeout=timeout, metadata=_metadata())
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
        call = self.stub.Events(agent_pb2.EventsRequest(
            since=since, read_backs=read_backs is not None, token=token), metadata=_metadata())
        if token:
            self.events_token = token
        try:
            async for event in call:
                if event.HasField("read_back"):
                    if read_backs is not None:
                        read = event.read_back
                        read_backs(ReadBack(read.inspect, read.listing, read.read_at_ns))
                    continue
                yield json_codec.loads(event.json)
        except grpc.aio.AioRpcError as err:
            raise self._error(err) from None
        finally:
            call.cancel()
            if token and self.events_token == token:
                self.events_token = ""

    async def request(
        self, method: str, path: str, query: str = "",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | AsyncIterator[bytes] | None = None,
        api_version: str = "", hijack: bool = False, request_id: str = "",
        read_back: bool = False, read_back_later: bool = False,
    ) -> DockerExchange:
        """Send one Docker API request; returns once the answer's head is in.

        `read_back` asks the agent to return the container a successful change was
        about with the answer (the exchange's `read_back`); only a DockerCall can, so
        a request that goes over the stream comes back without it. With
        `read_back_later` (for changes whose outcome the manager can write without the
        read, records.py), an agent whose events this manager follows with `read_backs`
        answers at once and sends the read-back there instead: the exchange then has
        none either.

        A bytes body travels with its Content-Length; an async iterator body is sent
        chunked unless `headers` carry a Content-Length. A hijacked request's body (e.g.
        exec start's JSON) must be bytes, since what follows it is the raw stream.
        """
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
        if self._unary and is_unary(method, path, hijack, body):
            exchange = await self._call(req, body or b"", read_back, read_back_later)
            if exchange is not None:
                return exchange
        call = self.stub.Docker(metadata=_metadata())
        body_task = None
        try:
            with self._timed("Docker"):
                await call.write(agent_pb2.DockerFrame(request=req))
                if hijack:
                    for frame in _frames(body or b""):
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
        answer = [(h.name, h.value) for h in head.response.headers
                  if h.name.lower() not in HOP_BY_HOP]
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
            code, _ = _status(err)
            if code == grpc.StatusCode.UNIMPLEMENTED:
                self._unary = False  # an older agent: streams from now on
                return None
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                return None
            raise self._error(err) from None
        finally:
            if observer is not None:
                observer("DockerCall", time.perf_counter() - start, ok)
        answer = [(h.name, h.value) for h in reply.response.headers
                  if h.name.lower() not in HOP_BY_HOP]
        read = (ReadBack(reply.inspect, reply.listing, reply.read_at_ns)
                if reply.inspect or reply.listing else None)
        return BufferedExchange(self.addr, reply.response.status, answer, reply.body, read)

    async def _call_once(self, request: agent_pb2.DockerCallRequest
                         ) -> agent_pb2.DockerCallReply:
        """On the call stream; unary for an agent from before DockerCalls, or while
        the manager has as many streams open as it keeps (call_stream.StreamSlots)."""
        stub = self.stub
        calls = self._calls
        if calls is not None and calls.has_room():
            try:
                return await calls.call(request)
            except CallFailed as err:
                if err.code != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._calls = None  # this agent answers DockerCall only (its stream is over)
        return await stub.DockerCall(request, metadata=_metadata())

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
        if self._calls is not None:
            await self._calls.close()
            self._calls = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None


async def _send_body(call, body: bytes | AsyncIterator[bytes]) -> None:
    """Stream a request body; a failure here shows up on the answer side."""
    try:
        if isinstance(body, bytes):
            for frame in _frames(body):
                await call.write(frame)
        else:
            async for chunk in body:
                for frame in _frames(bytes(chunk)):
                    await call.write(frame)
        await call.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        pass


def _stop(call, body_task: asyncio.Task | None) -> None:
    if body_task is not None:
        body_task.cancel()
    call.cancel()
