"""Hijacked streams (attach, exec start): the HTTP connection becomes a raw byte pipe.

After the answer's head (`101 UPGRADED`, or `200 OK` for clients that did not ask to
upgrade) the client's socket carries stdin one way and output the other. aiohttp lets
a handler take the connection's input over with `protocol.set_parser` (this is how its
WebSocket support works); output goes out through the response writer unframed, since
a 1xx answer has no body framing. Half-close matters: when the client shuts its write
side (stdin ended) the container's stdin is closed and output keeps flowing, so the
transport must not close itself on EOF (asyncio's default). The connection handling
is shared with the exec runtime, in `flock.docker_compat.hijack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from flock.docker_compat.hijack import RAW_STREAM, Inbound, raw_stream_response, take_over
from flock.manager.api.docker import proxy
from flock.manager.api.docker.call import Call
from flock.manager.cluster.agent_client import AgentError, DockerExchange
from flock.manager.cluster.model import Node

log = logging.getLogger("flock.manager.hijack")


async def serve(call: Call, node: Node, path: str, body: bytes | None = None) -> web.StreamResponse:
    """Open the hijacked exchange on `node` and pump bytes both ways until output ends."""
    request = call.request
    if body is None:
        body = await request.read() if request.body_exists else b""
    exchange = await proxy.open_exchange(call, node, path=path, body=body, hijack=True)
    if exchange.status not in (101, 200):
        return await proxy.relay(call, exchange)
    response = raw_stream_response(request, exchange.header("Content-Type") or RAW_STREAM)
    try:
        await response.prepare(request)
        pump = asyncio.create_task(_stdin(take_over(request), exchange))
        try:
            await _stdout(exchange, response)
        finally:
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
    finally:
        exchange.cancel()
    return response


async def _stdin(inbound: Inbound, exchange: DockerExchange) -> None:
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
