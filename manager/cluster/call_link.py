"""The manager's end of the call link: DockerCalls as plain frames on (mutual) TLS.

An agent that names a link address in its NodeInfo (agent/call_link.py) takes the same
tagged calls there as on its DockerCalls stream, at about a third of gRPC's CPU per
message on each side. `LinkStream` has the surface of call_stream's gRPC stream, so
CallStream keeps its slots and idle close for both alike.

CallStream opens the link beside its gRPC stream and moves the calls to it once the
agent has said ok, so no call waits for a link to open. A link that does not open
(nothing listens, a firewall drops it, TLS fails, the agent serves another node) is
left alone for RETRY seconds, said once in the log, and the calls stay on gRPC. A link
that breaks once open fails its waiting calls as a broken gRPC stream does
(UNAVAILABLE): they may have run.

An agent with NodeInfo.link_control takes Info, Heartbeat and Events here too
(`LinkStream.send_control`); an event stream is an `EventFeed` among the waiting calls,
which keeps the link from closing as idle while it is followed.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc
from google.protobuf.message import DecodeError

from flock.common.frames import HELLO, NO, OK, FramedProtocol, FrameError
from flock.manager.cluster.call_failed import CODES, CallFailed
from flock.protos import agent_pb2

if TYPE_CHECKING:
    from flock.manager.cluster.call_stream import HeadFirst

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # connect, TLS handshake and the agent's answer to the hello
RETRY = 60.0  # seconds a link that did not open is left alone


class CallLink:
    """Where one agent's link is, and whether it is worth trying now."""

    def __init__(self, address: str, node_id: str, tls: ssl.SSLContext | None = None) -> None:
        self.address = address
        self.node_id = node_id
        self.tls = tls
        self.failed_until = 0.0
        self.why = ""  # why it did not open, the last time it did not

    def usable(self) -> bool:
        return self.failed_until <= time.monotonic()

    def failed(self, why: str) -> None:
        if why != self.why:  # once per reason, not at every retry
            log.warning("call link %s (node %s) unusable, calls go over gRPC: %s",
                        self.address, self.node_id, why)
        self.why = why
        self.failed_until = time.monotonic() + RETRY

    def same(self, address: str, node_id: str) -> bool:
        return self.address == address and self.node_id == node_id


class LinkStream:
    """One link and the calls waiting for its answers (call_stream._OpenStream's
    surface: send, finish, waiting, last_call, reader, fail). `opened` is called once
    the agent said ok, and only then may calls be sent; `ended` when it is over,
    whether it opened or not."""

    is_link = True

    def __init__(self, link: CallLink, ended: Callable[[LinkStream], None],
                 opened: Callable[[LinkStream], None]) -> None:
        loop = asyncio.get_running_loop()
        self.waiting: dict[int, asyncio.Future] = {}
        self.last_call = time.monotonic()
        self._ended = ended
        self._opened = opened
        self._end: _ManagerEnd | None = None  # once connected
        self.greeting: asyncio.Future = loop.create_future()
        self.lost: asyncio.Future = loop.create_future()
        # Done once the link opened or ended, whichever comes first (who waits for it
        # then looks at which).
        self.settled: asyncio.Future = loop.create_future()
        # A context of its own, as the gRPC stream's reader (call_stream.py).
        self.reader = loop.create_task(self._run(link), context=contextvars.Context())

    def send(self, tag: int, request: agent_pb2.DockerCallRequest,
             answer: asyncio.Future | HeadFirst | None = None) -> asyncio.Future | HeadFirst:
        if answer is None:
            answer = asyncio.get_running_loop().create_future()
        self.waiting[tag] = answer
        self.last_call = time.monotonic()
        self._end.write_frame(
            agent_pb2.TaggedDockerCall(id=tag, call=request).SerializeToString())
        return answer

    def send_control(self, tag: int, what: str, request,
                     answer: asyncio.Future | EventFeed | None = None
                     ) -> asyncio.Future | EventFeed:
        """A control call (`what`: "info", "heartbeat" or "events", a TaggedDockerCall
        field) to an agent whose NodeInfo says link_control; its answer (the field of
        the same name in the reply) comes as a call's does."""
        if answer is None:
            answer = asyncio.get_running_loop().create_future()
        self.waiting[tag] = answer
        tagged = agent_pb2.TaggedDockerCall(id=tag)
        getattr(tagged, what).CopyFrom(request)
        self._end.write_frame(tagged.SerializeToString())
        return answer

    def cancel(self, tag: int) -> None:
        """Ask the agent to stop call `tag` (its caller gave up on it)."""
        if self._end is not None and self._end.transport is not None:
            self._end.write_frame(
                agent_pb2.TaggedDockerCall(id=tag, cancel=True).SerializeToString())

    def finish(self) -> None:
        """No more calls: the link closes (called once none is waiting)."""
        if self._end is not None and self._end.transport is not None:
            self._end.transport.close()

    def answered(self, tagged: agent_pb2.TaggedDockerCallReply) -> None:
        answer = self.waiting.get(tagged.id)
        if answer is None or answer.done():
            return  # given up on by its caller
        if tagged.code:
            answer.set_exception(CallFailed(CODES.get(tagged.code, grpc.StatusCode.UNKNOWN),
                                            tagged.details))
        else:
            what = tagged.WhichOneof("answer")
            answer.set_result(tagged.reply if what is None else getattr(tagged, what))

    async def _run(self, link: CallLink) -> None:
        failure = CallFailed(grpc.StatusCode.UNAVAILABLE,
                             f"the call link to {link.address} broke")
        try:
            try:
                await asyncio.wait_for(self._open(link), CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ssl.SSLError, _Refused) as exc:
                link.failed(_why(exc))
                return
            link.why = ""
            self._opened(self)
            if not self.settled.done():
                self.settled.set_result(None)
            error = await self.lost
            if error is not None:
                failure = CallFailed(grpc.StatusCode.UNAVAILABLE,
                                     f"the call link to {link.address} broke: {error}")
        except Exception as exc:  # noqa: BLE001 - the waiting calls must hear of it
            log.exception("call link failed")
            failure = CallFailed(grpc.StatusCode.UNKNOWN, f"the call link failed: {exc!r}")
        finally:
            if self._end is not None and self._end.transport is not None:
                self._end.transport.abort()
            self.fail(failure)
            self._ended(self)
            if not self.settled.done():
                self.settled.set_result(None)

    async def _open(self, link: CallLink) -> None:
        host, _, port = link.address.rpartition(":")
        host = host.strip("[]")
        await asyncio.get_running_loop().create_connection(
            self._connected, host, int(port), ssl=link.tls,
            server_hostname=host if link.tls is not None else None)
        self._end.write_frame(HELLO + link.node_id.encode())
        answer = await self.greeting
        if answer != OK:
            raise _Refused(answer[len(NO):].decode(errors="replace") if
                           answer.startswith(NO) else f"unexpected answer {answer[:40]!r}")

    def _connected(self) -> _ManagerEnd:
        self._end = _ManagerEnd(self)
        return self._end

    def fail(self, failure: CallFailed) -> None:
        waiting, self.waiting = self.waiting, {}
        for answer in waiting.values():
            if not answer.done():
                answer.set_exception(failure)


class EventFeed:
    """An event stream followed over the link, held where a call's future is: each
    reply under its tag is put in `queue` (an Event), and the end (the agent's status,
    or the link breaking) as the CallFailed it ends with."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self._ended = False

    def done(self) -> bool:
        return self._ended

    def set_result(self, event: agent_pb2.Event) -> None:
        self.queue.put_nowait(event)

    def set_exception(self, exc: BaseException) -> None:
        self._ended = True
        self.queue.put_nowait(exc)

    async def next(self) -> agent_pb2.Event:
        """The next event; the CallFailed the stream ended with, raised."""
        item = await self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


class _Refused(Exception):
    """The agent answered the hello with no."""


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer in {CONNECT_TIMEOUT:g}s"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno).lower()  # asyncio's own text names no reason
    return str(exc) or type(exc).__name__


class _ManagerEnd(FramedProtocol):
    def __init__(self, stream: LinkStream) -> None:
        super().__init__()
        self._stream = stream

    def frame_received(self, frame: bytes) -> None:
        stream = self._stream
        if not stream.greeting.done():
            stream.greeting.set_result(frame)
            return
        try:
            tagged = agent_pb2.TaggedDockerCallReply.FromString(frame)
        except DecodeError:
            raise FrameError("a frame that is not a TaggedDockerCallReply") from None
        stream.answered(tagged)

    def connection_lost(self, exc: Exception | None) -> None:
        stream = self._stream
        if not stream.greeting.done():
            stream.greeting.set_exception(
                ConnectionError(f"closed before the hello was answered{f': {exc}' if exc else ''}"))
        if not stream.lost.done():
            stream.lost.set_result(exc)
