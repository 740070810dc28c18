"""The client limits of manager/api/client_limits.py applied to aiohttp's server.

aiohttp has one knob for this (keepalive_timeout, an hour by default) and nothing per
address, so each connection's protocol is wrapped: the wrapper counts the connection
against its address, watches the bytes for a request's head and closes the transport
when a deadline passes; a middleware tells it when a request starts and when its answer
has gone out. The wrapper is what the listening sites get as their protocol factory
(GuardedRunner.server), so plain TCP, TLS (docker_compat/tls_half_close.py) and unix
sockets are guarded alike; unix socket clients have no address and are not capped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from flock.manager.api.client_limits import (
    AddressCounts,
    ClientLimits,
    HeadClock,
    aiohttp_keepalive,
)
from flock.manager.api.docker.errors import answer_bytes

log = logging.getLogger("flock.manager.connections")

LINGER = 1.0  # seconds a refused connection is read (and dropped) before it closes
LOG_EVERY = 10.0  # seconds between two warnings about one address at its cap


def client_address(transport: asyncio.BaseTransport) -> str | None:
    """The client's IP address; None for a unix socket."""
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


def refusal(address: str, limit: int) -> bytes:
    """A whole HTTP answer in dockerd's error shape, sent before reading the request."""
    body = answer_bytes({"message": (
        f"flock: too many connections from {address}: at most {limit} at once "
        "(flock manage --max-client-conns)")})
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))


class ConnectionGuard:
    """The limits and the connections open now, shared by every listening site."""

    def __init__(self, limits: ClientLimits) -> None:
        self.limits = limits
        self.counts = AddressCounts(limits.max_per_client)
        self.refused = 0  # connections refused at the cap since start
        self._by_transport: dict[asyncio.BaseTransport, GuardedConnection] = {}
        self._warned: dict[str, float] = {}

    def factory(self, make_inner: Callable[[], asyncio.Protocol]
                ) -> Callable[[], GuardedConnection]:
        return lambda: GuardedConnection(make_inner, self)

    def admit(self, address: str | None, now: float) -> bool:
        if address is None or self.counts.admit(address):
            return True
        self.refused += 1
        if now - self._warned.get(address, -LOG_EVERY) >= LOG_EVERY:
            self._warned[address] = now
            log.warning("refused a connection from %s: %d open, the cap is %d "
                        "(--max-client-conns); %d refused since start", address,
                        self.counts.open(address), self.limits.max_per_client, self.refused)
        return False

    def track(self, transport: asyncio.BaseTransport, connection: GuardedConnection) -> None:
        self._by_transport[transport] = connection

    def forget(self, transport: asyncio.BaseTransport, address: str | None) -> None:
        if self._by_transport.pop(transport, None) is not None and address is not None:
            self.counts.release(address)

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        """A request has begun; its answer is out when the task serving it ends (after
        aiohttp wrote the last byte), and the idle time starts then."""
        connection = self._by_transport.get(request.transport)  # type: ignore[arg-type]
        if connection is not None:
            connection.request_started()
            task = asyncio.current_task()
            if task is not None:
                task.add_done_callback(lambda _task: connection.request_done())
        return await handler(request)


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, inside the guard's limits."""

    def __init__(self, make_inner: Callable[[], asyncio.Protocol],
                 guard: ConnectionGuard) -> None:
        self._make_inner = make_inner
        self._guard = guard
        self._loop = asyncio.get_running_loop()
        self.inner: Any = None
        self.transport: asyncio.Transport | None = None
        self._address: str | None = None
        self._clock: HeadClock | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._address = client_address(transport)
        if not self._guard.admit(self._address, self._loop.time()):
            self._refuse()
            return
        self._guard.track(transport, self)
        self._clock = HeadClock(self._guard.limits, self._loop.time())
        self.inner = self._make_inner()
        self.inner.connection_made(transport)
        self._arm()

    def _refuse(self) -> None:
        """Answer 503 at once, stop writing, drop what the client still sends for a
        moment (closing with its request unread would reset the connection and could
        take the answer with it), then close."""
        assert self.transport is not None
        self.transport.write(refusal(self._address or "", self._guard.limits.max_per_client))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._loop.call_later(LINGER, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if self.inner is None:
            return  # refused: dropped
        if self._clock is not None:
            self._clock.received(data, self._loop.time())
            self._arm()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.inner is None:
            assert self.transport is not None
            self.transport.close()
            return None
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.inner is None:
            return
        assert self.transport is not None
        self._guard.forget(self.transport, self._address)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def request_started(self) -> None:
        if self._clock is not None:
            self._clock.request_started()

    def request_done(self) -> None:
        if self._clock is not None and not self._closed:
            self._clock.request_done(self._loop.time())
            self._arm()

    def _arm(self) -> None:
        """One timer at a time. A deadline that moved later is met by the timer firing
        early and setting itself again (no timer churn per read); one that moved
        earlier (a head began in a long idle time) gets a new timer."""
        if self._closed or self._clock is None:
            return
        deadline = self._clock.deadline
        if self._timer is not None:
            if deadline is not None and self._timer.when() <= deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._clock is None or self._closed:
            return
        why = self._clock.expired(self._loop.time())
        if why is None:
            self._arm()
            return
        level = logging.DEBUG if why.startswith("idle") else logging.INFO
        log.log(level, "closed the connection from %s: %s", self._address or "a unix socket",
                why)
        assert self.transport is not None
        self.transport.close()


class GuardedRunner(web.AppRunner):
    """An AppRunner whose sites serve through a ConnectionGuard."""

    def __init__(self, app: web.Application, limits: ClientLimits, *,
                 route: Callable[[Callable[[], Any]], Callable[[], asyncio.Protocol]]
                 | None = None, **kwargs: Any) -> None:
        self.guard = ConnectionGuard(limits)
        self._route = route  # wraps aiohttp's protocol factory inside the guard
        app.middlewares.insert(0, self.guard.middleware)
        super().__init__(app, keepalive_timeout=aiohttp_keepalive(limits), **kwargs)

    @property
    def server(self) -> Any:
        """The protocol factory the sites listen with (aiohttp's Server, wrapped; with a
        `route`, such as shared_port.splitter, between the guard and aiohttp)."""
        inner = super().server
        if inner is None:
            return None
        return self.guard.factory(inner if self._route is None else self._route(inner))
