"""A request ID for every Docker API request: the client's `X-Request-ID` when it is
sane (common/logs.py says what that means), a new one otherwise. It is bound for the
request's whole handling, so every manager log line carries it and the agent client
sends it on to the agent; the answer carries it back in `X-Request-ID`."""

from __future__ import annotations

from aiohttp import web

from flock.common.logs import HEADER, bind_request_id, new_request_id, sane_request_id

REQUEST_ID: web.RequestKey[str] = web.RequestKey("flock_request_id", str)


@web.middleware
async def request_id_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Outermost middleware: everything after it, forwarding included, runs bound."""
    request_id = sane_request_id(request.headers.get(HEADER)) or new_request_id()
    request[REQUEST_ID] = request_id
    with bind_request_id(request_id):
        return await handler(request)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the header goes out with the head, so streamed and
    hijacked answers (logs -f, attach) carry it too, not just the plain ones."""
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers[HEADER] = request_id
