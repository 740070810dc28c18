"""Hijacked streams (attach, exec start) on an aiohttp server: the HTTP connection becomes
a raw byte pipe.

After the answer's head (`101 UPGRADED`, or `200 OK` for clients that did not ask to
upgrade) the client's socket carries stdin one way and output the other. aiohttp lets a
handler take the connection's input over with `protocol.set_parser` (this is how its
WebSocket support works); output goes out through the response writer unframed, since a
1xx answer has no body framing. Half-close matters: when the client shuts its write side
(stdin ended) output keeps flowing, so the transport must not close itself on EOF
(asyncio's default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

RAW_STREAM = "application/vnd.docker.raw-stream"


class RawStreamResponse(web.StreamResponse):
    """A response whose body is the raw stream: no chunking, no length."""

    _length_check = False


class Inbound:
    """Parser for aiohttp's protocol: the client's bytes after the head go to `queue`,
    then None once the client half-closed or went away; `lost` tells the two apart."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.lost = asyncio.Event()
        self._ended = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data and not self._ended:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        if not self._ended:
            self._ended = True
            self.queue.put_nowait(None)

    def connection_lost(self) -> None:
        self.feed_eof()
        self.lost.set()


class KeepOpenOnEof(asyncio.Protocol):
    """Wraps aiohttp's protocol so that a client's half-close does not close the socket."""

    def __init__(self, inner: asyncio.Protocol, on_eof: Callable[[], None],
                 on_lost: Callable[[], None] | None = None) -> None:
        self.inner = inner
        self.on_eof = on_eof
        self.on_lost = on_lost

    def connection_made(self, transport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.on_eof()
        return True

    def connection_lost(self, exc) -> None:
        if self.on_lost is not None:
            self.on_lost()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def wants_upgrade(request: web.BaseRequest) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return "upgrade" in tokens and bool(request.headers.get("Upgrade"))


def raw_stream_response(request: web.BaseRequest,
                        content_type: str = RAW_STREAM) -> RawStreamResponse:
    """The answer's head: `101 UPGRADED` when the client asked to upgrade, else `200 OK`.
    The connection closes when the handler returns: it is no HTTP connection any more."""
    upgrade = wants_upgrade(request)
    response = RawStreamResponse(status=101 if upgrade else 200,
                                 reason="UPGRADED" if upgrade else "OK")
    response.content_type = content_type
    if upgrade:
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    response.force_close()
    return response


def take_over(request: web.BaseRequest) -> Inbound:
    """After the head went out: the client's further bytes (stdin) arrive in the returned
    Inbound instead of aiohttp's HTTP parser. Old clients that got a `200 OK` write stdin
    the same way, so this is done whether or not the client upgraded."""
    inbound = Inbound()
    transport = request.transport
    if transport is None:
        inbound.connection_lost()
        return inbound
    request.protocol.set_parser(inbound)
    transport.set_protocol(KeepOpenOnEof(transport.get_protocol(), inbound.feed_eof,
                                         inbound.connection_lost))
    return inbound
