"""One port for the Docker API and the ClusterService, so that the `flock` commands reach
the manager with nothing but the docker CLI's own settings (DOCKER_HOST, DOCKER_TLS_VERIFY,
DOCKER_CERT_PATH).

A gRPC client opens a connection with the HTTP/2 client preface (with TLS, after the
handshake, once ALPN chose h2); no HTTP/1.x request starts that way ("PRI" is no method
of the Docker API). So each connection's first bytes decide where it goes: the preface
to the ClusterService, a grpc.aio server listening on a private unix socket (in a 0700
folder), through a byte pipe; anything else to aiohttp's protocol, handed the bytes
read so far. TLS is the listener's: the same certificate, and under --tlsverify the same
client-cert requirement, for both.

The split sits inside the connection guard (guarded_server.py), so every connection,
gRPC or HTTP, counts against its address's cap (--max-client-conns), and one that sends
nothing is closed after the idle timeout. The preface holds a blank line, which the
guard takes for a complete request head: after it no clock of the guard runs on a gRPC
connection (an Events stream may be quiet for hours); gRPC's own keepalive and the
peers' closes end it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("flock.manager.connections")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 section 3.4
GRPC = "grpc"
HTTP = "http"


def classify(head: bytes) -> str | None:
    """Where a connection whose first bytes are `head` goes: GRPC, HTTP, or None while
    those bytes could still be the start of either."""
    if not head:
        return None
    if head[:len(PREFACE)] != PREFACE[:len(head)]:
        return HTTP
    return GRPC if len(head) >= len(PREFACE) else None


def splitter(grpc_socket: str) -> Callable[[Callable[[], Any]], Callable[[], asyncio.Protocol]]:
    """What GuardedRunner takes as `route`: the HTTP protocol factory wrapped so that
    gRPC connections go to `grpc_socket` instead."""

    def wrap(make_http: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        return lambda: SplitConnection(make_http, grpc_socket)

    return wrap


class SplitConnection(asyncio.Protocol):
    """Holds a connection's first bytes until they say which protocol serves it, then
    passes everything to that one."""

    def __init__(self, make_http: Callable[[], Any], grpc_socket: str) -> None:
        self._make_http = make_http
        self._grpc_socket = grpc_socket
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._route: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._route is not None:
            self._route.data_received(data)
            return
        self._head += data
        kind = classify(self._head)
        if kind is not None:
            self._choose(kind)

    def _choose(self, kind: str) -> None:
        assert self._transport is not None
        head, self._head = self._head, b""
        if kind == GRPC:
            self._route = GrpcPipe(self._transport, self._grpc_socket)
        else:
            self._route = self._make_http()
            self._route.connection_made(self._transport)
        self._route.data_received(head)

    def eof_received(self) -> bool | None:
        if self._route is None:  # a few bytes and the end: HTTP's parser answers them
            self._choose(HTTP)
        return self._route.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._route is not None:
            self._route.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._route is not None:
            self._route.pause_writing()

    def resume_writing(self) -> None:
        if self._route is not None:
            self._route.resume_writing()


class GrpcPipe:
    """Copies one client connection's bytes to and from the private gRPC socket, with
    flow control both ways (a full side pauses reading on the other). HTTP/2 has no
    half-close: the end of either side's bytes ends the connection."""

    def __init__(self, client: asyncio.Transport, socket_path: str) -> None:
        self.client = client
        self.upstream: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._closed = False
        client.pause_reading()  # until the upstream connection is there
        self._task = asyncio.get_running_loop().create_task(self._connect(socket_path))

    async def _connect(self, socket_path: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_unix_connection(lambda: Upstream(self), socket_path)
        except OSError as exc:
            log.warning("cannot reach the ClusterService at %s: %s", socket_path, exc)
            self.client.close()
            return
        if self._closed:
            upstream.close()
            return
        self.upstream = upstream
        for chunk in self._pending:
            upstream.write(chunk)
        self._pending.clear()
        self.client.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self._pending.append(data)
        else:
            self.upstream.write(data)

    def eof_received(self) -> bool:
        return False  # the client's transport closes; connection_lost closes upstream

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self.upstream is not None:
            self.upstream.close()

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()


class Upstream(asyncio.Protocol):
    """The gRPC server's side of a pipe."""

    def __init__(self, pipe: GrpcPipe) -> None:
        self.pipe = pipe

    def data_received(self, data: bytes) -> None:
        self.pipe.client.write(data)

    def eof_received(self) -> bool:
        self.pipe.client.close()  # after what was written to it has gone out
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.client.close()

    def pause_writing(self) -> None:
        self.pipe.client.pause_reading()

    def resume_writing(self) -> None:
        self.pipe.client.resume_reading()
