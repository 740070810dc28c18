"""Keep-alive HTTP/1.1 connections to a runtime's endpoint, for short exchanges.

The agent's DockerCalls (unary_calls.py) are short requests answered in full: a
create, a start, an inspect. aiohttp's client cost 0.3-0.45 ms per request here over
the engine's own time (docs/scale.md), more than the rest of the agent's hop; this
writes the head and body in one write and reads the answer with the raw bridge's own
pieces (http_bridge.py), on connections kept open between requests.

A kept connection the engine has closed in the meantime shows as one that ends before
any answer. Only then, and only for a request that changes nothing (GET, HEAD), is the
request sent again on a new connection: a POST that may have reached the engine is
never sent twice (a second create would make a second container).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from flock.agent.engine_endpoint import Endpoint
from flock.agent.http_bridge import (
    ResponseError,
    ResponseHead,
    body_framing,
    chunk_size,
    connect,
    parse_response_head,
)

SAFE_TO_RESEND = frozenset({"GET", "HEAD"})


# Shown an answer's head before its body is read (a head-first call, unary_calls.py).
OnHead = Callable[[ResponseHead], None]


class AnswerTooLarge(Exception):
    """The runtime's answer is larger than the caller takes."""


class RuntimeGone(ConnectionError):
    """The runtime closed the connection, or answered what is not HTTP/1.1."""


@dataclass
class Answer:
    head: ResponseHead
    body: bytes


class _Connection:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        """False once the runtime has closed its end (a kept connection it timed out)."""
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


class KeptConnections:
    """Up to `idle` connections to one endpoint kept open between exchanges. Any number
    may be in use at once: a `docker wait` holds one for as long as the container runs,
    and must not make the next create wait for it."""

    def __init__(self, endpoint: Endpoint, idle: int = 16) -> None:
        self.endpoint = endpoint
        self.idle = idle
        self._idle: list[_Connection] = []
        self._in_use: set[_Connection] = set()

    def __len__(self) -> int:
        """Connections open now, kept or in use."""
        return len(self._idle) + len(self._in_use)

    @property
    def in_use(self) -> int:
        """Connections carrying an exchange now."""
        return len(self._in_use)

    async def exchange(self, method: str, head: bytes, body: bytes, max_body: int,
                       on_head: OnHead | None = None) -> Answer:
        """Send one request (its head and body, already encoded) and read the whole
        answer; `on_head` is shown the answer's head as soon as it is in. Raises
        AnswerTooLarge, RuntimeGone, and the OS's errors (or ssl's) when the runtime
        cannot be reached."""
        conn, kept = self._take(), True
        if conn is None:
            conn, kept = await self._open(), False
        try:
            answer, reusable = await self._attempt(conn, method, head, body, max_body, on_head)
        except _ClosedBeforeAnswer:
            if not (kept and method in SAFE_TO_RESEND):
                raise RuntimeGone("the runtime closed the connection without answering"
                                  ) from None
            conn = await self._open()
            try:
                answer, reusable = await self._attempt(conn, method, head, body, max_body, on_head)
            except _ClosedBeforeAnswer:
                raise RuntimeGone("the runtime closed the connection without answering"
                                  ) from None
        self._in_use.discard(conn)
        if reusable and len(self._idle) < self.idle and conn.usable():
            self._idle.append(conn)
        else:
            conn.close()
        return answer

    async def _attempt(self, conn: _Connection, method: str, head: bytes, body: bytes,
                       max_body: int, on_head: OnHead | None) -> tuple[Answer, bool]:
        try:
            return await _exchange(conn, method, head, body, max_body, on_head)
        except BaseException:
            # Failed or cancelled part way: what is left on the connection is unknown.
            self._in_use.discard(conn)
            conn.close()
            raise

    def _take(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                self._in_use.add(conn)
                return conn
            conn.close()
        return None

    async def _open(self) -> _Connection:
        reader, writer = await connect(self.endpoint)
        conn = _Connection(reader, writer)
        self._in_use.add(conn)
        return conn

    async def close(self) -> None:
        """Close every connection, those in use too (their exchanges fail)."""
        conns = [*self._idle, *self._in_use]
        self._idle.clear()
        self._in_use.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()


class _ClosedBeforeAnswer(Exception):
    """The connection ended before a byte of the answer came."""


async def _exchange(conn: _Connection, method: str, head: bytes, body: bytes,
                    max_body: int, on_head: OnHead | None) -> tuple[Answer, bool]:
    """The answer, and whether the connection may carry another exchange."""
    try:
        conn.writer.write(head + body if body else head)
        raw = await conn.reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _ClosedBeforeAnswer() from None
        raise RuntimeGone("the runtime closed the connection inside its answer's head"
                          ) from None
    except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
        raise _ClosedBeforeAnswer() from None
    except asyncio.LimitOverrunError:
        raise RuntimeGone("the runtime's answer head is too long") from None
    try:
        answer = parse_response_head(raw)
        if on_head is not None:
            on_head(answer)
        data, to_eof = await _read_body(conn.reader, method, answer, max_body)
    except ResponseError as exc:
        raise RuntimeGone(f"bad answer from the runtime: {exc}") from None
    reusable = not to_eof and raw.startswith(b"HTTP/1.1") and (
        answer.get("connection") or "").lower() != "close"
    return Answer(answer, data), reusable


async def _read_body(reader: asyncio.StreamReader, method: str, head: ResponseHead,
                     max_body: int) -> tuple[bytes, bool]:
    """The body the head announces, and whether it ran to the connection's end."""
    try:
        kind, length = body_framing(method, head)
    except ValueError as exc:
        raise ResponseError(str(exc)) from None
    if kind == "none":
        return b"", False
    if kind == "chunked":
        return await _read_chunked(reader, max_body), False
    if kind == "eof":
        data = bytearray()
        while len(data) <= max_body and (piece := await reader.read(max_body + 1 - len(data))):
            data += piece
        if len(data) > max_body:
            raise AnswerTooLarge(f"answer over {max_body} bytes")
        return bytes(data), True
    if length > max_body:
        raise AnswerTooLarge(f"answer of {length} bytes")
    try:
        return await reader.readexactly(length), False
    except asyncio.IncompleteReadError as exc:
        raise ResponseError(f"the runtime closed the connection "
                            f"{length - len(exc.partial)} bytes early") from None


async def _read_chunked(reader: asyncio.StreamReader, max_body: int) -> bytes:
    pieces: list[bytes] = []
    size_so_far = 0
    try:
        while True:
            size = chunk_size(await reader.readuntil(b"\n"))
            if size == 0:
                while (await reader.readuntil(b"\n")).strip():  # trailers
                    pass
                return b"".join(pieces)
            size_so_far += size
            if size_so_far > max_body:
                raise AnswerTooLarge(f"answer over {max_body} bytes")
            pieces.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise ResponseError("chunk not followed by CRLF")
    except asyncio.IncompleteReadError:
        raise ResponseError("the runtime closed the connection inside a chunked body"
                            ) from None
