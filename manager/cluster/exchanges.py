"""One Docker API exchange with an agent, as the manager's handlers see it: the answer's
status and headers, then its body, however it travelled (a Docker stream, one
DockerCall reply, or a head-first call whose body comes later)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from flock.manager.cluster.agent_errors import AgentError, map_error
from flock.manager.cluster.call_failed import CallFailed
from flock.protos import agent_pb2
from flock.protos.limits import MAX_FRAME


def frames_of(data: bytes) -> list[agent_pb2.DockerFrame]:
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
                for frame in frames_of(data):
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


class LateExchange(BufferedExchange):
    """A head-first call's exchange (call_stream.HeadFirstCall): the head is in, the
    body comes in the call's second reply, as late as the container's exit (a wait)."""

    def __init__(self, addr: str, status: int, headers: list[tuple[str, str]],
                 call, failure) -> None:
        super().__init__(addr, status, headers, b"")
        self._pending = call  # None once the body is in, or given up on
        self._failure = failure  # CallFailed -> AgentError (AgentClient's map)

    async def read(self) -> bytes | None:
        call = self._pending
        if call is None:
            return None
        try:
            reply = await call.whole()  # cancelled here: the call cancels itself
        except CallFailed as err:
            self._pending = None
            raise self._failure(err) from None
        self._pending = None
        return reply.body or None

    def cancel(self) -> None:
        """The client went away: the agent stops the call (its runtime connection
        closes); nothing once the answer is in."""
        call, self._pending = self._pending, None
        if call is not None:
            call.cancel()
