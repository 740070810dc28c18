"""One Docker API exchange, carried from a DockerFrame stream to a runtime's endpoint
(a unix socket, or a tcp:// engine, with TLS through docker_compat.tls_stream).

The agent does not interpret Docker requests: it writes them as HTTP/1.1 to the
runtime's endpoint and streams the answer back frame by frame, so streamed answers
(logs -f, events, pull progress) and hijacked connections (attach, exec start) behave
exactly as they would against the engine itself.

Frame order (see protos/agent.proto): the manager sends `request`, then the request body
as `data` frames ending with `close_write`. For a hijacked request the body is exactly
Content-Length bytes (0 when absent) and every later `data` frame is raw stream input,
`close_write` half-closes it. The agent answers `response`, then `data` frames, and
ends the stream when the answer (or the raw stream from the runtime) ends; when the
manager is still sending then (hijacked, or a body the runtime refused before reading
it all) a `close_write` after the answer says it is over (agent/server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from flock.agent.engine_endpoint import Endpoint, as_endpoint, tls_failure
from flock.docker_compat.hop_headers import HOP_BY_HOP, HOP_REQUEST
from flock.docker_compat.paths import ascii_target
from flock.protos import agent_pb2
from flock.protos.limits import MAX_FRAME

log = logging.getLogger(__name__)

HEAD_LIMIT = 1 << 20  # longest response head we accept
BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


class BridgeError(ValueError):
    """The manager sent frames that do not form a Docker request; the message says how."""


class ResponseError(ValueError):
    """The runtime's answer is not HTTP/1.1 we can read."""


@dataclass
class ResponseHead:
    status: int
    reason: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def parse_response_head(raw: bytes) -> ResponseHead:
    """Status and headers of an HTTP/1.x response head (up to and including the blank line)."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ResponseError(f"bad status line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ResponseError(f"bad header line {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return ResponseHead(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


def content_length(headers: list[tuple[str, str]]) -> int | None:
    """The Content-Length among `headers`, None when absent; ValueError when not a count."""
    for name, value in headers:
        if name.lower() == "content-length":
            if not value.strip().isdigit():
                raise ValueError(f"bad Content-Length {value!r}")
            return int(value)
    return None


def request_target(req: agent_pb2.DockerRequest) -> str:
    """The request line's target: version prefix, path and query, in ASCII. The manager
    encodes what it sends; a name that arrives unencoded (`/images/镜像/json`) is
    encoded here, so the runtime answers it (400 or 404) instead of the bridge failing."""
    target = req.path
    if req.api_version:
        target = f"/v{req.api_version.removeprefix('v')}{target}"
    if req.query:
        target += "?" + req.query
    return ascii_target(target)


def build_request_head(req: agent_pb2.DockerRequest, body: str, length: int = 0,
                       keep_alive: bool = False) -> bytes:
    """The HTTP/1.1 head for `req`; `body` is "none", "length" or "chunked". The
    bridge's connection serves one exchange (`Connection: close`); a kept one
    (kept_connections.py) says nothing, which in HTTP/1.1 is keep-alive."""
    for field, text in (("method", req.method), ("path", req.path), ("query", req.query)):
        if any(ch in text for ch in " \r\n\t"):
            raise BridgeError(f"bad request {field} {text!r}: contains whitespace")
    if not (req.method.isascii() and req.method.isalpha()):
        raise BridgeError(f"bad request method {req.method!r}")
    if not req.path.startswith("/"):
        raise BridgeError(f"bad request path {req.path!r}: must start with '/'")
    lines = [f"{req.method.upper()} {request_target(req)} HTTP/1.1", "Host: docker"]
    for header in req.headers:
        if any(ch in header.name + header.value for ch in "\r\n") or ":" in header.name:
            raise BridgeError(f"bad request header {header.name!r}")
        if header.name.lower() not in HOP_REQUEST:
            lines.append(f"{header.name}: {header.value}")
    if req.hijack:
        lines += ["Connection: Upgrade", "Upgrade: tcp"]
    elif not keep_alive:
        lines.append("Connection: close")
    if body == "chunked":
        lines.append("Transfer-Encoding: chunked")
    elif body == "length" or req.method.upper() not in BODYLESS_METHODS:
        lines.append(f"Content-Length: {length}")
    # The request line is ASCII now; header values go as the UTF-8 the manager's
    # server decoded them from (a Latin-1 encoding raised on anything past U+00FF).
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def is_raw_stream(req: agent_pb2.DockerRequest, head: ResponseHead) -> bool:
    """Whether the runtime switched the connection to a raw two-way stream: 101, or the
    200 without a length that older engines answer to a hijack."""
    if not req.hijack:
        return False
    if head.status == 101:
        return True
    framed = head.get("content-length") is not None or head.get("transfer-encoding")
    return head.status == 200 and not framed


def chunk_size(line: bytes) -> int:
    """The size a chunked body's size line announces (extensions ignored)."""
    size_text = line.split(b";", 1)[0].strip()
    try:
        return int(size_text, 16)
    except ValueError:
        raise ResponseError(f"bad chunk size {size_text[:20]!r}") from None


async def read_chunked(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """The decoded pieces of a chunked body, as soon as they arrive."""
    while True:
        line = await reader.readline()
        if not line.endswith(b"\n"):
            raise ResponseError("the runtime closed the connection inside a chunked body")
        size = chunk_size(line)
        if size == 0:
            while (await reader.readline()).strip():  # trailers
                pass
            return
        async for piece in read_length(reader, size):
            yield piece
        try:
            ending = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            ending = b""
        if ending != b"\r\n":
            raise ResponseError("chunk not followed by CRLF (the runtime closed the connection?)")


async def read_length(reader: asyncio.StreamReader, size: int) -> AsyncIterator[bytes]:
    """Exactly `size` bytes, in pieces as they arrive."""
    remaining = size
    while remaining:
        piece = await reader.read(min(remaining, MAX_FRAME))
        if not piece:
            raise ResponseError(f"the runtime closed the connection {remaining} bytes early")
        remaining -= len(piece)
        yield piece


async def read_to_eof(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while piece := await reader.read(MAX_FRAME):
        yield piece


def body_framing(method: str, head: ResponseHead) -> tuple[str, int]:
    """How the body the head announces travels: ("none", 0), ("chunked", 0),
    ("length", n), or ("eof", 0) until the runtime closes the connection. ValueError for
    a Content-Length that is not a count."""
    if method.upper() == "HEAD" or head.status < 200 or head.status in (204, 304):
        return "none", 0
    if (head.get("transfer-encoding") or "").lower().endswith("chunked"):
        return "chunked", 0
    length = content_length(head.headers)
    return ("eof", 0) if length is None else ("length", length)


def body_reader(method: str, head: ResponseHead, reader: asyncio.StreamReader):
    """The async iterator over the response body that the head announces."""
    kind, length = body_framing(method, head)
    if kind == "none":
        return _nothing()
    if kind == "chunked":
        return read_chunked(reader)
    if kind == "length":
        return read_length(reader, length)
    return read_to_eof(reader)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def fill_response(response: agent_pb2.DockerResponse, status: int,
                  headers: list[tuple[str, str]]) -> None:
    """`response` (a field of the message it goes in, so nothing is copied): `status`
    and the headers that go past one hop."""
    response.status = status
    add = response.headers.add
    for name, value in headers:
        if name.lower() not in HOP_BY_HOP:
            add(name=name, value=value)


def response_frame(status: int, headers: list[tuple[str, str]]) -> agent_pb2.DockerFrame:
    frame = agent_pb2.DockerFrame()
    fill_response(frame.response, status, headers)
    return frame


def error_frames(status: int, message: str) -> list[agent_pb2.DockerFrame]:
    """A Docker-style JSON error answer, for failures of the runtime connection itself."""
    body = json.dumps({"message": message}).encode() + b"\n"
    head = [("Content-Type", "application/json")]
    return [response_frame(status, head), agent_pb2.DockerFrame(data=body)]


class _Frames:
    """The manager's frames after the request, with one frame of look-ahead."""

    def __init__(self, frames: AsyncIterator[agent_pb2.DockerFrame]) -> None:
        self._it = frames.__aiter__()
        self._pending: list[agent_pb2.DockerFrame] = []

    async def next(self) -> agent_pb2.DockerFrame | None:
        if self._pending:
            return self._pending.pop()
        return await anext(self._it, None)

    def push_back(self, frame: agent_pb2.DockerFrame) -> None:
        self._pending.append(frame)


async def _body_plan(req: agent_pb2.DockerRequest, frames: _Frames) -> tuple[str, int]:
    """How the request body travels: ("length", n), ("chunked", 0) or ("none", 0)."""
    try:
        declared = content_length([(h.name, h.value) for h in req.headers])
    except ValueError as exc:
        raise BridgeError(str(exc)) from None
    if req.hijack:
        return ("length", declared or 0)
    if declared is not None:
        return ("length", declared)
    first = await frames.next()
    kind = first.WhichOneof("kind") if first is not None else "close_write"
    if kind == "close_write":
        return ("none", 0)
    if kind != "data":
        raise BridgeError(f"unexpected {kind} frame in a request body")
    frames.push_back(first)
    return ("chunked", 0)


async def _send_exact(frames: _Frames, writer: asyncio.StreamWriter, size: int) -> None:
    """Write exactly `size` body bytes; what follows in the same frame stays queued."""
    remaining = size
    while remaining:
        frame = await frames.next()
        if frame is None or frame.WhichOneof("kind") != "data":
            raise BridgeError(f"request body ended {remaining} bytes short of Content-Length")
        data = frame.data
        if len(data) > remaining:
            frames.push_back(agent_pb2.DockerFrame(data=data[remaining:]))
            data = data[:remaining]
        writer.write(data)
        remaining -= len(data)
        await writer.drain()


class BodyPipe:
    """The way a request's head and body go to the runtime: a second descriptor of the
    connection's socket, written with `loop.sock_sendall`.

    A runtime may refuse a request before reading its body (a bad tag on a build, a
    missing path on an archive put), answer and close. The next body write then fails,
    and asyncio's transport tears its reading side down on a failed write, so the answer
    already on its way was lost. Writes through this pipe fail alone: the answer is still
    read to its end through the transport. A TLS connection has no socket to share
    (records must go out in order through one writer); its writes already fail alone
    (docker_compat/tls_stream.py), so the pipe writes through it."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        self._writer = writer if sock is None else None
        self._sock = None if sock is None else socket.socket(fileno=os.dup(sock.fileno()))
        if self._sock is not None:
            self._sock.setblocking(False)

    async def write(self, data: bytes) -> None:
        if self._sock is None:
            self._writer.write(data)
            await self._writer.drain()
            return
        await asyncio.get_running_loop().sock_sendall(self._sock, data)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()


class _ResetEndsAnswer(asyncio.StreamReaderProtocol):
    """A runtime that answers before reading the whole body closes with the rest unread,
    and the kernel then resets the connection. What it answered is already in the
    reader; a reset ends it like EOF would, instead of making those bytes unreadable
    (StreamReader.read raises a stored error before returning buffered data). An answer
    cut short still shows: its length or chunking comes up short."""

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(None if isinstance(exc, ConnectionResetError) else exc)


async def connect(endpoint: Endpoint) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio.open_connection to the endpoint, with _ResetEndsAnswer as the protocol."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=HEAD_LIMIT, loop=loop)
    protocol = _ResetEndsAnswer(reader, loop=loop)
    transport = await endpoint.open_stream(lambda: protocol)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def connect_failure(exc: BaseException) -> str:
    """Why a connection to the runtime failed, in words."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return tls_failure(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


async def _send_body(frames: _Frames, pipe: BodyPipe, chunked: bool) -> None:
    """Stream body frames to the runtime until close_write (or the manager half-closes).
    A runtime that stopped reading ends this with an OSError; its answer still comes."""
    while (frame := await frames.next()) is not None:
        kind = frame.WhichOneof("kind")
        if kind == "close_write":
            break
        if kind != "data":
            raise BridgeError(f"unexpected {kind} frame in a request body")
        if not frame.data:
            continue
        if chunked:
            await pipe.write(b"%x\r\n%s\r\n" % (len(frame.data), frame.data))
        else:
            await pipe.write(frame.data)
    if chunked:
        await pipe.write(b"0\r\n\r\n")


async def _pump_raw_input(frames: _Frames, writer: asyncio.StreamWriter) -> None:
    """Hijacked: the manager's bytes to the runtime; close_write (or the end of the
    manager's stream) half-closes, so the container sees EOF on stdin."""
    while (frame := await frames.next()) is not None:
        kind = frame.WhichOneof("kind")
        if kind == "close_write":
            break
        if kind == "data":
            writer.write(frame.data)
            await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


async def forward(
    target: Endpoint | str, frames: AsyncIterator[agent_pb2.DockerFrame]
) -> AsyncIterator[agent_pb2.DockerFrame]:
    """Answer one Docker exchange from the runtime at `target` (an Endpoint, or a unix
    socket path).

    Raises BridgeError when the manager's frames are malformed. When the consumer stops
    (the manager went away) the runtime connection is closed, which is how the engine
    learns to stop a follow stream.
    """
    incoming = _Frames(frames)
    first = await incoming.next()
    if first is None or first.WhichOneof("kind") != "request":
        raise BridgeError("the first frame of a Docker exchange must be a request")
    req = first.request
    body, length = await _body_plan(req, incoming)
    head = build_request_head(req, body, length)
    endpoint = as_endpoint(target)
    try:
        reader, writer = await connect(endpoint)
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        for frame in error_frames(500, f"Cannot connect to the runtime at {endpoint}: "
                                       f"{connect_failure(exc)}"):
            yield frame
        return
    tasks: list[asyncio.Task] = []
    pipe: BodyPipe | None = None
    try:
        if req.hijack:
            writer.write(head)
            await _send_exact(incoming, writer, length)
        elif body == "none":
            writer.write(head)
        else:
            pipe = BodyPipe(writer)
            await pipe.write(head)
            tasks.append(asyncio.create_task(_send_body(incoming, pipe, body == "chunked")))
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
            answer = parse_response_head(raw_head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ResponseError) as exc:
            for frame in error_frames(500, f"Bad answer from the runtime: {exc}"):
                yield frame
            return
        except ssl.SSLError as exc:  # TLS 1.3: a refused client cert shows on first read
            for frame in error_frames(500, f"Cannot connect to the runtime at {endpoint}: "
                                           f"{connect_failure(exc)}"):
                yield frame
            return
        yield response_frame(answer.status, answer.headers)
        if is_raw_stream(req, answer):
            tasks.append(asyncio.create_task(_pump_raw_input(incoming, writer)))
            pieces = read_to_eof(reader)
        else:
            pieces = body_reader(req.method, answer, reader)
        async for piece in pieces:
            yield agent_pb2.DockerFrame(data=piece)
    except (ConnectionError, ResponseError, ssl.SSLError) as exc:
        log.info("request %s %s %s: runtime stream ended: %s",
                 req.request_id, req.method, req.path, exc)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if pipe is not None:
            pipe.close()
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
