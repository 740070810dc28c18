"""The hot lane: `docker run`'s ping, create and start (and a container's inspect and
removal, the list, version and info) answered without aiohttp's per-request layers.

Why: at a thousand creates a second the manager spent about a quarter of its CPU in
aiohttp's request machinery (protocol, request and response objects, the URL
dispatcher, the writer) around handlers that are themselves cheap (issue 19's
profiles). The lane reads a connection's requests itself and, for the routes it takes,
runs the same middlewares, the same router and handlers (api/docker/app.handle) and the
same answer hooks as aiohttp would, writing the answer aiohttp would write
(answer.py). So the lane changes the cost of a request, not its meaning.

The first request it does not take (another route, a streamed or chunked body, an
upgrade, anything head.py leaves alone) hands the connection to aiohttp for good: its
protocol is made then and fed the bytes from that request on. A connection therefore
answers in order; the lane answers one request at a time and reads ahead only a little.
It sits where aiohttp's protocol would, inside the connection guard and the gRPC split
(guarded_server.py, shared_port.py), so the client limits and timeouts hold alike.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from flock.manager.api.docker.errors import error_response
from flock.manager.api.lane.answer import NotForTheLane, answer_bytes, head_fields
from flock.manager.api.lane.head import NEED_MORE, Head, parse_head
from flock.manager.api.lane.request import LaneRequest

log = logging.getLogger("flock.manager.api")

READ_AHEAD = 256 << 10  # bytes held past the request being answered before reading pauses
_VERSION = r"(?:/v\d+\.\d+)?"
_ID = r"[^/]+"
# The routes the lane takes, by method. Only which requests take the lane: the router
# in `handle` matches each again, exactly as for aiohttp's requests.
# A client's first request on a connection is usually a ping (the docker CLI) or the
# version (the SDK's version="auto"): they are the lane's too, or the connection would
# be aiohttp's before its first create.
ROUTES = {
    "POST": re.compile(rf"{_VERSION}/containers/(?:create|{_ID}/start)/?"),
    "GET": re.compile(rf"{_VERSION}/(?:containers/(?:{_ID}/)?json|_ping|version|info)/?"),
    "HEAD": re.compile(rf"{_VERSION}/_ping/?"),
    # A client that removes what it ran (the SDK, compose) on its kept connection would
    # otherwise hand that connection to aiohttp for every create and start after.
    "DELETE": re.compile(rf"{_VERSION}/containers/{_ID}/?"),
}
Dispatch = Callable[[Any], Awaitable[web.StreamResponse]]


class HotLane:
    """What the lane's connections share: the app whose middlewares and answer hooks
    they run, and the dispatch at the end of that chain (http_front's)."""

    COUNTS = ("answered", "handed_over", "open")  # the metric's labels (ManagerMetrics)

    def __init__(self, app: web.Application, dispatch: Dispatch) -> None:
        self._app = app
        self._dispatch = dispatch
        self._chain: Dispatch | None = None
        self.connections: set[LaneConnection] = set()
        self.answered = 0    # requests the lane answered
        self.handed_over = 0  # connections handed to aiohttp

    def counts(self) -> dict[str, int]:
        return dict(zip(self.COUNTS, (self.answered, self.handed_over,
                                      len(self.connections)), strict=True))

    def wrap(self, make_http: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
        """aiohttp's protocol factory, with the lane in front of each connection."""
        return lambda: LaneConnection(self, make_http)

    @staticmethod
    def takes(head: Head) -> bool:
        route = ROUTES.get(head.method)
        if route is None or route.fullmatch(head.path) is None:
            return False
        # A start with a body (API < 1.24 host config) streams to the node: aiohttp's.
        return head.length == 0 or head.method == "POST" and head.path.endswith(
            ("/create", "/create/"))

    async def answer(self, request: LaneRequest) -> tuple[bytes, bool]:
        """The whole answer to `request`, through the app's middlewares and hooks, and
        whether the connection closes after it."""
        response = await self.chain()(request)
        try:
            if not isinstance(response, web.Response):
                raise NotForTheLane(f"a {type(response).__name__}")
            head_fields(response, request.method)
            for hook in self._app.on_response_prepare:
                await hook(request, response)  # type: ignore[arg-type]
            self.answered += 1
            close = response.keep_alive is False or response.headers.get(
                "Connection", "").lower() == "close"
            return answer_bytes(response, close, request.method), close
        except NotForTheLane as exc:  # a handler of the lane's routes changed its answer
            log.error("%s %s: the hot lane cannot write this answer (%s)", request.method,
                      request.path, exc)
            failed = error_response(500, f"flock: the manager's hot lane cannot write the "
                                         f"answer to {request.method} {request.path}")
            head_fields(failed, request.method)
            return answer_bytes(failed, True, request.method), True

    def chain(self) -> Dispatch:
        """The app's middlewares around the dispatch, built once, the way aiohttp builds
        them (each a partial taking the next as `handler`). Built on first use: the
        connection guard adds its middleware when the runner is made."""
        if self._chain is None:
            handler = self._dispatch
            for middleware in reversed(self._app.middlewares):
                handler = functools.partial(middleware, handler=handler)
            self._chain = handler
        return self._chain

    def close(self) -> None:
        """At shutdown: connections still on the lane close once idle."""
        for connection in list(self.connections):
            connection.close_when_idle()


class LaneConnection(asyncio.Protocol):
    """One client connection: on the lane until a request is not for it."""

    def __init__(self, lane: HotLane, make_http: Callable[[], Any]) -> None:
        self._lane = lane
        self._make_http = make_http
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.inner: Any = None  # aiohttp's protocol, once handed over
        self._buffer = bytearray()
        self._head: Head | None = None  # parsed, its body still coming
        self._task: asyncio.Task | None = None
        self._closing = False
        self._reading_paused = False
        self._writing_paused = False

    # ---------------------------------------------------------------- transport events
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as aiohttp does
        self._lane.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        self._buffer += data
        if self._task is None:
            self._next()
        elif len(self._buffer) > READ_AHEAD and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        # As aiohttp's protocol: the client's end of sending ends the connection, and
        # connection_lost cancels a request still being answered (its claim on a name,
        # say, then lasts until the node answers: placement's own business).
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._lane.connections.discard(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)
            return
        self._closing = True
        if self._task is not None:
            self._task.cancel()  # as aiohttp with handler_cancellation

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()
        self._writing_paused = True

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
            return
        self._writing_paused = False
        if self._task is None:
            self._next()

    def close_when_idle(self) -> None:
        if self.inner is not None or self.transport is None:
            return
        self._closing = True
        if self._task is None:
            self.transport.close()

    # ---------------------------------------------------------------- requests
    def _next(self) -> None:
        """Answer the next whole request in the buffer, hand the connection over, or
        wait for more bytes."""
        if self._task is not None or self._writing_paused or self.transport is None:
            return
        if self._closing:
            self.transport.close()
            return
        if not self._buffer:
            return
        head = self._head or parse_head(self._buffer)
        if head is NEED_MORE:
            return
        if isinstance(head, str) or not self._lane.takes(head):
            self._hand_over()
            return
        end = head.size + head.length
        if len(self._buffer) < end:
            self._head = head
            return
        self._head = None
        body = bytes(self._buffer[head.size:end])
        del self._buffer[:end]
        request = LaneRequest(head, body, self.transport)
        self._task = self._loop.create_task(self._answer(request))
        # Added before the guard's own callback (which its middleware adds as the task
        # runs), so the next request's task is made first and the guard hears "done"
        # before that task's "started": the other order would leave the guard's clock
        # idle while a request is served.
        self._task.add_done_callback(self._answered)

    async def _answer(self, request: LaneRequest) -> None:
        data, close = await self._lane.answer(request)
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(data)
        if close:
            self._closing = True

    def _answered(self, task: asyncio.Task) -> None:
        self._task = None
        if not task.cancelled() and task.exception() is not None:
            log.error("hot lane: %s", task.exception(), exc_info=task.exception())
            self._closing = True
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        self._next()

    def _hand_over(self) -> None:
        """From here on the connection is aiohttp's, from the request in the buffer."""
        assert self.transport is not None
        self._lane.handed_over += 1
        self._lane.connections.discard(self)
        self.inner = self._make_http()
        self.inner.connection_made(self.transport)
        if self._writing_paused:
            self.inner.pause_writing()
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        data, self._buffer = bytes(self._buffer), bytearray()
        if data:
            self.inner.data_received(data)
