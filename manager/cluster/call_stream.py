"""The manager's end of DockerCalls: one stream per agent carrying its DockerCalls.

A unary gRPC call costs each side two to three times the CPU of a message on a stream
that is already open (tens of microseconds against over a hundred here), and a create
and a start are two calls each. So the calls about one container share one long-lived
stream per agent: each is tagged, written, and its answer handed to whoever waits for
that tag. The stream opens on first use and again after it breaks; calls waiting when
it breaks fail as unary calls would on a broken connection.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import AsyncIterator, Callable

import grpc

from protos import agent_pb2

# Opens the stream: the generated stub's DockerCalls, given the requests to send.
Open = Callable[[AsyncIterator[agent_pb2.TaggedDockerCall]], grpc.aio.StreamStreamCall]

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class CallFailed(Exception):
    """A call ended with a gRPC status: the agent's for that call, or the stream's when
    the stream broke while the call waited."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class CallStream:
    """DockerCalls to one agent. `call()` from any number of tasks at once."""

    def __init__(self, open_stream: Open) -> None:
        self._open = open_stream
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._outbox: asyncio.Queue | None = None
        self._reader: asyncio.Task | None = None

    async def call(self, request: agent_pb2.DockerCallRequest) -> agent_pb2.DockerCallReply:
        """The agent's answer; CallFailed with the status the call ended with."""
        if self._reader is None:
            self._start()
        tag = next(self._ids)
        answer = asyncio.get_running_loop().create_future()
        self._waiting[tag] = answer
        self._outbox.put_nowait(agent_pb2.TaggedDockerCall(id=tag, call=request))
        try:
            return await answer
        finally:
            # Given up on (cancelled): the agent still answers, and the answer is dropped.
            self._waiting.pop(tag, None)

    def _start(self) -> None:
        self._outbox = asyncio.Queue()
        # A context of its own: the stream outlives the request that happened to open it,
        # and must not log under that request's ID.
        self._reader = asyncio.get_running_loop().create_task(
            self._read(self._outbox), context=contextvars.Context())

    async def _read(self, outbox: asyncio.Queue) -> None:
        stream = self._open(_drain(outbox))
        failure = CallFailed(grpc.StatusCode.UNAVAILABLE, "the call stream ended")
        try:
            async for tagged in stream:
                answer = self._waiting.get(tagged.id)
                if answer is None or answer.done():
                    continue
                if tagged.code:
                    code = _CODES.get(tagged.code, grpc.StatusCode.UNKNOWN)
                    answer.set_exception(CallFailed(code, tagged.details))
                else:
                    answer.set_result(tagged.reply)
        except grpc.aio.AioRpcError as err:
            failure = CallFailed(err.code(), err.details() or err.code().name)
        finally:
            stream.cancel()
            if self._outbox is outbox:
                self._outbox = self._reader = None
            self._fail_waiting(failure)

    def _fail_waiting(self, failure: CallFailed) -> None:
        waiting, self._waiting = self._waiting, {}
        for answer in waiting.values():
            if not answer.done():
                answer.set_exception(failure)

    async def close(self) -> None:
        reader, self._reader, self._outbox = self._reader, None, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        self._fail_waiting(CallFailed(grpc.StatusCode.CANCELLED, "the agent client closed"))


async def _drain(outbox: asyncio.Queue) -> AsyncIterator[agent_pb2.TaggedDockerCall]:
    while True:
        yield await outbox.get()
