"""Forwarding a Docker API request to a node's agent and streaming the answer back.

The one place that knows how a client request becomes an agent exchange: which headers
travel, how a body streams, how an answer streams back chunk by chunk (logs -f, stats,
events), and what happens when either end goes away mid-way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from types import EllipsisType

from aiohttp import web

from flock.docker_compat.hop_headers import HOP_BY_HOP, HOP_REQUEST
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import DockerError
from flock.manager.cluster.agent_client import (
    AgentClient,
    AgentError,
    AgentUnavailable,
    DockerExchange,
    SentCall,
)
from flock.manager.cluster.clients import AGENT_HINT, NodeNotConnected
from flock.manager.cluster.model import Node

log = logging.getLogger("flock.manager.proxy")

# Request headers that describe this hop, not the request; the client's credentials for
# a proxy in front of the manager are not the node's business either. Content-Length
# travels on: the agent sends a streamed body with that length instead of chunked.
_DROP_REQUEST = (HOP_REQUEST - {"content-length"}) | {"proxy-authorization"}
# Answer headers aiohttp writes itself or that describe the agent's hop.
_DROP_ANSWER = HOP_BY_HOP | {"date", "server", "upgrade"}


def request_headers(request: web.Request) -> list[tuple[str, str]]:
    """The headers a node gets. A value that is not UTF-8 (aiohttp hands its bytes over
    as surrogates) cannot travel in the agent protocol's text fields: a 400 naming the
    header, rather than a 500 from deep in the encoder."""
    kept = [(k, v) for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST]
    for name, value in kept:
        if not (name + value).isascii():
            try:
                (name + value).encode()
            except UnicodeEncodeError:
                raise DockerError(400, f"invalid header {name}: its value is not UTF-8 "
                                       "text") from None
    return kept


def client_for(call: Call, node: Node) -> AgentClient:
    """The node's client (clients.require), its absence as a 503: a DockerError, as the
    fan-outs over nodes expect of a node that cannot be asked."""
    try:
        return call.cluster.clients.require(node)
    except NodeNotConnected as exc:
        raise DockerError(503, str(exc)) from None


def unavailable(node: Node, exc: Exception) -> DockerError:
    return DockerError(503, f"node {node.name}: {exc}. {AGENT_HINT}")


async def request_body(request: web.Request) -> AsyncIterator[bytes]:
    """The client's body as it arrives: streamed to a node, never held whole."""
    async for chunk in request.content.iter_any():
        yield chunk


async def open_exchange(
    call: Call, node: Node, method: str | None = None, path: str | None = None,
    query: str | None = None, body: bytes | AsyncIterator[bytes] | None | EllipsisType = ...,
    headers: list[tuple[str, str]] | None = None, hijack: bool = False,
    read_back: bool = False, read_back_later: bool = False, head_first: bool = False,
) -> DockerExchange:
    """Start the exchange on `node`; the client's body streams through unless given.
    `path` is sent as it is (encoded, docker_compat.paths); by default the matched route
    rebuilt with its parameters encoded. `read_back`, `read_back_later`, `head_first`:
    see AgentClient.request."""
    request = call.request
    if body is ...:  # a body the front read to check it is sent from memory
        body = call.body if call.body is not None else (
            request_body(request) if request.body_exists else None)
    if headers is None:
        headers = request_headers(request)
    try:
        return await client_for(call, node).request(
            method or request.method, path or call.agent_path(),
            call.query_string if query is None else query,
            headers=headers, body=body, api_version=call.version, hijack=hijack,
            read_back=read_back, read_back_later=read_back_later, head_first=head_first)
    except AgentUnavailable as exc:
        raise unavailable(node, exc) from None


def send_head_first(call: Call, node: Node, path: str) -> SentCall | None:
    """A bodiless head-first call (a wait) sent to `node` now, its head to come
    (AgentClient.send_head_first); None when it must go by open_exchange."""
    try:
        return client_for(call, node).send_head_first(
            call.request.method, path, call.query_string,
            headers=request_headers(call.request), api_version=call.version)
    except AgentUnavailable as exc:
        raise unavailable(node, exc) from None


def answer_headers(exchange: DockerExchange) -> list[tuple[str, str]]:
    return [(k, v) for k, v in exchange.headers if k.lower() not in _DROP_ANSWER]


async def relay(call: Call, exchange: DockerExchange,
                see: Callable[[bytes], None] | None = None) -> web.StreamResponse:
    """Stream the exchange's answer to the client as it comes, flushing each chunk.
    `see` is shown each chunk before the client gets it."""
    response = web.StreamResponse(status=exchange.status)
    for name, value in answer_headers(exchange):
        response.headers.add(name, value)
    return await relay_body(call, response, exchange, see)


async def relay_body(call: Call, response: web.StreamResponse, exchange: DockerExchange,
                     see: Callable[[bytes], None] | None = None) -> web.StreamResponse:
    """relay() into `response`, whose head goes out first unless it already has (a
    wait's, answered before the node's: containers.wait)."""
    try:
        if not response.prepared:
            await response.prepare(call.request)
        while (chunk := await exchange.read()) is not None:
            if see is not None:
                see(chunk)
            await response.write(chunk)
    except (AgentError, ConnectionError) as exc:
        # The head is out; all we can do is end the answer early and say why in the log.
        log.warning("%s %s: answer cut short: %s", call.request.method, call.path, exc)
        response.force_close()
    except asyncio.CancelledError:
        exchange.cancel()
        raise
    finally:
        exchange.cancel()
    return response


async def forward(call: Call, node: Node, path: str | None = None,
                  query: str | None = None) -> web.StreamResponse:
    """The whole round trip: client request -> node -> streamed answer."""
    exchange = await open_exchange(call, node, path=path, query=query)
    return await relay(call, exchange)


async def forward_buffered(call: Call, node: Node, path: str | None = None,
                           body: bytes | None | EllipsisType = ..., read_back: bool = False,
                           read_back_later: bool = False) -> tuple[DockerExchange, bytes]:
    """Forward and read the whole (small) answer, for calls whose result the manager
    records before answering the client."""
    exchange = await open_exchange(call, node, path=path, body=body, read_back=read_back,
                                   read_back_later=read_back_later)
    try:
        data = await exchange.body()
    except AgentUnavailable as exc:
        raise unavailable(node, exc) from None
    finally:
        exchange.cancel()
    return exchange, data


def buffered_response(exchange: DockerExchange, data: bytes) -> web.Response:
    response = web.Response(status=exchange.status, body=data or None)
    for name, value in answer_headers(exchange):
        if name.lower() != "content-type" or data:
            response.headers.add(name, value)
    return response


async def node_json(call: Call, node: Node, method: str, path: str, query: str = "",
                    body: object | None = None, timeout: float = 30) -> tuple[int, object]:
    """One JSON call to a node's engine; AgentUnavailable becomes a 503 naming the node."""
    try:
        return await client_for(call, node).request_json(method, path, query, body, timeout)
    except AgentUnavailable as exc:
        raise unavailable(node, exc) from None


def message_of(answer: object) -> str:
    if isinstance(answer, dict) and "message" in answer:
        return str(answer["message"])
    if isinstance(answer, str):
        return answer.strip()
    return json.dumps(answer)
