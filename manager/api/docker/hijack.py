"""Hijacked streams (attach, exec start): the HTTP connection becomes a raw byte pipe.

After the answer's head (`101 UPGRADED`, or `200 OK` for clients that did not ask to
upgrade) the client's socket carries stdin one way and output the other. aiohttp lets
a handler take the connection's input over with `protocol.set_parser` (this is how its
WebSocket support works); output goes out through the response writer unframed, since
a 1xx answer has no body framing. Half-close matters: when the client shuts its write
side (stdin ended) the container's stdin is closed and output keeps flowing, so the
transport must not close itself on EOF (asyncio's default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from manager.api.docker import proxy
from manager.api.docker.app import Call
from manager.cluster.agent_client import AgentError, DockerExchange
from manager.cluster.model import Node

log = logging.getLogger("flock.manager.hijack")

RAW_STREAM = "application/vnd.docker.raw-stream"


class RawStreamResponse(web.StreamResponse):
    """A response whose body is the raw stream: no chunking, no length."""

    _length_check = False


class _Inbound:
    """Parser for aiohttp's protocol: client bytes after the head go to a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if data:
            self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


class _KeepOpenOnEof(asyncio.Protocol):
    """Wraps aiohttp's protocol so that a client's half-close does not close the socket."""

    def __init__(self, inner: asyncio.Protocol, on_eof) -> None:
        self.inner = inner
        self.on_eof = on_eof

    def connection_made(self, transport) -> None:
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.on_eof()
        return True

    def connection_lost(self, exc) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def wants_upgrade(request: web.Request) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    return "upgrade" in tokens and bool(request.headers.get("Upgrade"))


async def serve(call: Call, node: Node, path: str, body: bytes | None = None) -> web.StreamResponse:
    """Open the hijacked exchange on `node` and pump bytes both ways until output ends."""
    request = call.request
    upgrade = wants_upgrade(request)
    if body is None:
        body = await request.read() if request.body_exists else b""
    exchange = await proxy.open_exchange(call, node, path=path, body=body, hijack=True)
    if exchange.status not in (101, 200):
        return await proxy.relay(call, exchange)
    response = RawStreamResponse(status=101 if upgrade else 200,
                                 reason="UPGRADED" if upgrade else "OK")
    response.content_type = exchange.header("Content-Type") or RAW_STREAM
    if upgrade:
        response.headers["Connection"] = "Upgrade"
        response.headers["Upgrade"] = "tcp"
    response.force_close()
    transport = request.transport
    try:
        await response.prepare(request)
        pump = None
        if upgrade and transport is not None:
            inbound = _Inbound()
            request.protocol.set_parser(inbound)
            original = transport.get_protocol()
            transport.set_protocol(_KeepOpenOnEof(original, inbound.feed_eof))
            pump = asyncio.create_task(_stdin(inbound, exchange))
        try:
            await _stdout(exchange, response)
        finally:
            if pump is not None:
                pump.cancel()
                with contextlib.suppress(BaseException):
                    await pump
    finally:
        exchange.cancel()
    return response


async def _stdin(inbound: _Inbound, exchange: DockerExchange) -> None:
    try:
        while (data := await inbound.queue.get()) is not None:
            await exchange.write(data)
        await exchange.close_write()
    except AgentError as exc:
        log.debug("stdin to the container stopped: %s", exc)


async def _stdout(exchange: DockerExchange, response: web.StreamResponse) -> None:
    try:
        while (chunk := await exchange.read()) is not None:
            await response.write(chunk)
    except (AgentError, ConnectionError) as exc:
        log.debug("hijacked output stopped: %s", exc)
