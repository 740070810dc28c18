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
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable

import grpc

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
_CODES = {code.value[0]: code for code in grpc.StatusCode}
_END = object()  # in an outbox: half-close the stream (its answers still come)


class CallFailed(Exception):
    """A call ended with a gRPC status: the agent's for that call, or the stream's when
    the stream broke while the call waited."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class StreamSlots:
    """How many call streams may be open at once, shared by every agent client."""

    def __init__(self, limit: int = MAX_OPEN, idle: float = IDLE) -> None:
        self.limit = limit
        self.idle = idle
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give(self) -> None:
        self.open -= 1


class _OpenStream:
    """One DockerCalls stream and the calls waiting for its answers."""

    def __init__(self, open_stream: Open, ended: Callable[[_OpenStream], None]) -> None:
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.waiting: dict[int, asyncio.Future] = {}
        self.last_call = time.monotonic()
        self._ended = ended
        # A context of its own: the stream outlives the request that happened to open
        # it, and must not log under that request's ID.
        self.reader = asyncio.get_running_loop().create_task(
            self._read(open_stream), context=contextvars.Context())

    def send(self, tag: int, request: agent_pb2.DockerCallRequest) -> asyncio.Future:
        answer = asyncio.get_running_loop().create_future()
        self.waiting[tag] = answer
        self.last_call = time.monotonic()
        self.outbox.put_nowait(agent_pb2.TaggedDockerCall(id=tag, call=request))
        return answer

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
                    code = _CODES.get(tagged.code, grpc.StatusCode.UNKNOWN)
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
    """DockerCalls to one agent. `call()` from any number of tasks at once."""

    def __init__(self, open_stream: Open, slots: StreamSlots | None = None) -> None:
        self._open = open_stream
        self._slots = slots
        self._ids = itertools.count(1)
        self._current: _OpenStream | None = None
        self._idle_timer: asyncio.TimerHandle | None = None

    def has_room(self) -> bool:
        """Whether a call can go on the stream now (it is open, or may open)."""
        return self._current is not None or self._slots is None or (
            self._slots.open < self._slots.limit)

    async def call(self, request: agent_pb2.DockerCallRequest) -> agent_pb2.DockerCallReply:
        """The agent's answer; CallFailed with the status the call ended with. Only when
        has_room() says so."""
        stream = self._current or self._start()
        tag = next(self._ids)
        try:
            return await stream.send(tag, request)
        finally:
            # Given up on (cancelled): the agent still answers, and the answer is dropped.
            stream.waiting.pop(tag, None)

    def _start(self) -> _OpenStream:
        if self._slots is not None and not self._slots.take():
            raise RuntimeError("no call stream slot: ask has_room() first")
        self._current = _OpenStream(self._open, self._ended)
        if self._slots is not None:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._slots.idle, self._close_if_idle)
        return self._current

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

    def _ended(self, stream: _OpenStream) -> None:
        if self._current is stream:
            self._current = None
        if self._slots is not None:
            self._slots.give()

    async def close(self) -> None:
        stream, self._current = self._current, None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if stream is not None:
            stream.reader.cancel()
            await asyncio.gather(stream.reader, return_exceptions=True)
            stream.fail(CallFailed(grpc.StatusCode.CANCELLED, "the agent client closed"))
