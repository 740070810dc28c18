"""The manager's end of DockerCalls: one stream per agent carrying its DockerCalls.

A unary gRPC call costs each side two to three times the CPU of a message on a stream
that is already open (tens of microseconds against over a hundred here), and a create
and a start are two calls each. So the calls about one container share one long-lived
stream per agent: each is tagged, written, and its answer handed to whoever waits for
that tag. The stream opens on first use and again after it breaks; calls waiting when
it breaks fail as unary calls would on a broken connection.

An open stream holds some 35-40 KiB on each side, so `StreamSlots` caps how many are
open across the manager (`flock manage --call-streams`): past the cap a call goes
unary, and a stream idle for a while closes, giving its slot to a busier node. The
default covers 10,000 nodes: with spread, every node is called about as often, and at
a cap of 2,048 four calls in five went unary, which cost the manager 11% and the hollow
fleet 25% more CPU per create+start than a stream each (docs/scale.md).

An agent that names a call link (NodeInfo.calls_address) takes the same calls there as
frames on TLS without gRPC, at a third of the CPU per message (call_link.py); the link
holds a slot and closes when idle as a stream does, and until it is open (or while it
cannot open) the calls go on the gRPC stream.

A head-first call (`CallStream.head_first`: a wait) has two answers, its head and then
its whole answer, possibly as late as a container's exit; a new Docker stream for it
cost 1-1.5 ms more than a call on this stream (bench/request_overhead.py, "wait
(head)"), and `docker run` sends its start only once its wait's head is in.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc

from flock.common import open_files
from flock.manager.cluster.call_failed import CODES, CallFailed
from flock.manager.cluster.call_link import CallLink, LinkStream
from flock.protos import agent_pb2

# Opens the stream: the generated stub's DockerCalls, given the requests to send.
Open = Callable[[AsyncIterator[agent_pb2.TaggedDockerCall]], grpc.aio.StreamStreamCall]

MAX_OPEN = 16384  # call streams open at once, manager-wide (up to about 600 MiB)
# Seconds without a call before a stream closes. At 30 s, spread at 10,000 nodes calls
# each node about every 25-35 s, so streams closed and reopened all through a burst:
# 300 s cut the manager's CPU per create+start by 12% and the fleet's by 20%
# (docs/scale.md). Memory stays bounded by the cap.
IDLE = 300.0

log = logging.getLogger(__name__)
_END = object()  # in an outbox: half-close the stream (its answers still come)


class StreamSlots:
    """How many call streams may be open at once, shared by every agent client; of
    them, how many may be call links, each a file descriptor (common/open_files.py:
    by default half the open-files limit, less a reserve)."""

    def __init__(self, limit: int = MAX_OPEN, idle: float = IDLE,
                 link_limit: int | None = None) -> None:
        self.limit = limit
        self.idle = idle
        self.open = 0
        self.link_limit = open_files.link_budget() if link_limit is None else link_limit
        self.links = 0

    def take(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give(self) -> None:
        self.open -= 1

    def take_link(self) -> bool:
        if self.links >= self.link_limit or not self.take():
            return False
        self.links += 1
        return True

    def give_link(self) -> None:
        self.links -= 1
        self.give()


class HeadFirst:
    """A head-first call's two answers, held where a call's future is (`waiting`), with
    a future's surface for the stream's reader: `head` has the first reply (the head
    alone, or the whole answer from an agent that sent it at once), `whole` the last."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.head: asyncio.Future = loop.create_future()
        self.whole: asyncio.Future = loop.create_future()

    def done(self) -> bool:
        return self.whole.done()

    def set_result(self, reply: agent_pb2.DockerCallReply) -> None:
        if not self.head.done():
            self.head.set_result(reply)
        if not reply.head_only:
            self.whole.set_result(reply)

    def set_exception(self, exc: BaseException) -> None:
        for part in (self.head, self.whole):
            if not part.done():
                part.set_exception(exc)
        if not self.whole.cancelled():
            self.whole.exception()  # whoever failed on the head never asks for the rest


class HeadFirstCall:
    """A head-first call in flight: `await head()`, then `await whole()`; `cancel()`
    when its client went away (the agent then stops it and closes its runtime
    connection: a wait could otherwise hold one until the container exits)."""

    def __init__(self, stream: _OpenStream | LinkStream, tag: int, parts: HeadFirst) -> None:
        self._stream = stream
        self._tag = tag
        self._parts = parts

    # Shielded: a waiting task that is cancelled (its client went away) must not cancel
    # the answer itself, which would make the call look over, and the agent never told.
    async def head(self) -> agent_pb2.DockerCallReply:
        try:
            return await asyncio.shield(self._parts.head)
        except BaseException:
            self.cancel()
            raise

    async def whole(self) -> agent_pb2.DockerCallReply:
        try:
            return await asyncio.shield(self._parts.whole)
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Give up on the call; nothing once its whole answer is in."""
        if self._stream.waiting.pop(self._tag, None) is not None and not self._parts.done():
            self._stream.cancel(self._tag)


class _OpenStream:
    """One DockerCalls stream and the calls waiting for its answers."""

    is_link = False

    def __init__(self, open_stream: Open, ended: Callable[[_OpenStream], None]) -> None:
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.waiting: dict[int, asyncio.Future] = {}
        self.last_call = time.monotonic()
        self._ended = ended
        # A context of its own: the stream outlives the request that happened to open
        # it, and must not log under that request's ID.
        self.reader = asyncio.get_running_loop().create_task(
            self._read(open_stream), context=contextvars.Context())

    def send(self, tag: int, request: agent_pb2.DockerCallRequest,
             answer: asyncio.Future | HeadFirst | None = None) -> asyncio.Future | HeadFirst:
        if answer is None:
            answer = asyncio.get_running_loop().create_future()
        self.waiting[tag] = answer
        self.last_call = time.monotonic()
        self.outbox.put_nowait(agent_pb2.TaggedDockerCall(id=tag, call=request))
        return answer

    def cancel(self, tag: int) -> None:
        """Ask the agent to stop call `tag` (its caller gave up on it)."""
        self.outbox.put_nowait(agent_pb2.TaggedDockerCall(id=tag, cancel=True))

    def finish(self) -> None:
        """Half-close: no more calls; the stream ends once the agent has answered."""
        self.outbox.put_nowait(_END)

    async def _read(self, open_stream: Open) -> None:
        stream: grpc.aio.StreamStreamCall | None = None
        failure = CallFailed(grpc.StatusCode.UNAVAILABLE, "the call stream ended")
        try:
            stream = open_stream(self._drain())
            async for tagged in stream:
                answer = self.waiting.get(tagged.id)
                if answer is None or answer.done():
                    continue  # given up on by its caller
                if tagged.code:
                    code = CODES.get(tagged.code, grpc.StatusCode.UNKNOWN)
                    answer.set_exception(CallFailed(code, tagged.details))
                else:
                    answer.set_result(tagged.reply)
        except grpc.aio.AioRpcError as err:
            failure = CallFailed(err.code(), err.details() or err.code().name)
        except Exception as exc:  # noqa: BLE001 - the waiting calls must hear of it
            log.exception("call stream failed")
            failure = CallFailed(grpc.StatusCode.UNKNOWN, f"the call stream failed: {exc!r}")
        finally:
            # gRPC stops reading the requests only when it cancels a call still going;
            # the end marker lets a finished call's reader finish too.
            self.outbox.put_nowait(_END)
            if stream is not None:
                stream.cancel()
            self.fail(failure)
            self._ended(self)

    async def _drain(self) -> AsyncIterator[agent_pb2.TaggedDockerCall]:
        while (tagged := await self.outbox.get()) is not _END:
            yield tagged

    def fail(self, failure: CallFailed) -> None:
        waiting, self.waiting = self.waiting, {}
        for answer in waiting.values():
            if not answer.done():
                answer.set_exception(failure)


class CallStream:
    """DockerCalls to one agent. `call()` from any number of tasks at once. When the
    agent names a call link (`link`, call_link.py) it is opened beside the gRPC stream,
    and takes the calls once it has: a link being opened (or one a firewall drops,
    which takes CONNECT_TIMEOUT to find out) holds up no call."""

    def __init__(self, open_stream: Open, slots: StreamSlots | None = None) -> None:
        self._open = open_stream
        self._slots = slots
        self._ids = itertools.count(1)
        self._current: _OpenStream | LinkStream | None = None
        self._opening: LinkStream | None = None  # the link, until the agent says ok
        self._idle_timer: asyncio.TimerHandle | None = None
        self.link: CallLink | None = None

    @property
    def carrier(self) -> str:
        """What the calls travel on now: "link", "stream" (gRPC), or "" (none open)."""
        if self._current is None:
            return ""
        return "link" if self._current.is_link else "stream"

    def has_room(self) -> bool:
        """Whether a call can go on the stream now (it is open, or may open)."""
        return self._current is not None or self._slots is None or (
            self._slots.open < self._slots.limit)

    async def call(self, request: agent_pb2.DockerCallRequest) -> agent_pb2.DockerCallReply:
        """The agent's answer; CallFailed with the status the call ended with. Only when
        has_room() says so."""
        stream = self._carrier()
        tag = next(self._ids)
        try:
            return await stream.send(tag, request)
        finally:
            # Given up on (cancelled): the agent still answers, and the answer is dropped.
            stream.waiting.pop(tag, None)

    def head_first(self, request: agent_pb2.DockerCallRequest) -> HeadFirstCall:
        """Send a head-first call (request.head_first set); only when has_room() says
        so, and only to an agent that takes them (NodeInfo.head_first_calls)."""
        stream = self._carrier()
        tag = next(self._ids)
        parts = HeadFirst()
        stream.send(tag, request, parts)
        return HeadFirstCall(stream, tag, parts)

    @property
    def open_link(self) -> LinkStream | None:
        """The call link when it carries the calls now."""
        current = self._current
        return current if current is not None and current.is_link else None

    async def ready_link(self) -> LinkStream | None:
        """The call link, opened first if it is not open and may be (a slot free, not
        failing): for what goes only there (call_link.LinkStream.send_control). None
        when there is none to use; the calls then stay on gRPC as ever."""
        if (link := self.open_link) is not None:
            return link
        if self.link is None:
            return None
        if self._opening is None:
            self._open_link()
        opening = self._opening
        if opening is None:
            return None
        await asyncio.shield(opening.settled)
        return self.open_link if self._current is opening else None

    def tag(self) -> int:
        """A tag no other call of this client has."""
        return next(self._ids)

    def _carrier(self) -> _OpenStream | LinkStream:
        stream = self._current or self._start()
        if not stream.is_link and self.link is not None and self._opening is None:
            self._open_link()
        return stream

    def _start(self) -> _OpenStream:
        if self._slots is not None and not self._slots.take():
            raise RuntimeError("no call stream slot: ask has_room() first")
        self._current = _OpenStream(self._open, self._ended)
        self._arm_idle()
        return self._current

    def _open_link(self) -> None:
        """Open the link beside the gRPC stream, if it may be tried and a slot is free
        for it while the stream finishes its calls."""
        if not self.link.usable() or (self._slots is not None and not self._slots.take_link()):
            return
        self._opening = LinkStream(self.link, self._link_ended, self._link_opened)

    def _link_opened(self, link: LinkStream) -> None:
        self._opening = None
        previous, self._current = self._current, link
        if previous is not None:
            previous.finish()  # its calls still get their answers
        self._arm_idle()

    def _link_ended(self, link: LinkStream) -> None:
        if self._opening is link:  # it did not open (call_link.CallLink.why says why)
            self._opening = None
        self._ended(link)

    def _arm_idle(self) -> None:
        if self._slots is None:
            return
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        self._idle_timer = asyncio.get_running_loop().call_later(
            self._slots.idle, self._close_if_idle)

    def _close_if_idle(self) -> None:
        stream, self._idle_timer = self._current, None
        if stream is None:
            return
        idle_for = time.monotonic() - stream.last_call
        if idle_for >= self._slots.idle and not stream.waiting:
            self._current = None  # the next call opens another, if there is room
            stream.finish()
        else:
            self._idle_timer = asyncio.get_running_loop().call_later(
                max(self._slots.idle - idle_for, 1.0), self._close_if_idle)

    def _ended(self, stream: _OpenStream | LinkStream) -> None:
        if self._current is stream:
            self._current = None
        if self._slots is not None:
            if stream.is_link:
                self._slots.give_link()
            else:
                self._slots.give()

    async def close(self) -> None:
        stream, self._current = self._current, None
        opening, self._opening = self._opening, None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        for each in (stream, opening):
            if each is not None:
                each.reader.cancel()
                await asyncio.gather(each.reader, return_exceptions=True)
                each.fail(CallFailed(grpc.StatusCode.CANCELLED, "the agent client closed"))
