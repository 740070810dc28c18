"""HTTP handlers for /containers."""

from __future__ import annotations

import contextlib
import json

from aiohttp import web

from flock.agent.runtimes.exec import views
from flock.agent.runtimes.exec.containers import ContainerManager, NotModified
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.filters import parse_filters
from flock.agent.runtimes.exec.jsonresp import json_response
from flock.agent.runtimes.exec.logs import handle_logs
from flock.agent.runtimes.exec.signals import parse_signal
from flock.docker_compat.ps_filters import LIST_FILTERS


def _manager(request: web.Request) -> ContainerManager:
    return request.app[CORE].containers


def _flag(request: web.Request, key: str) -> bool:
    return request.query.get(key, "").lower() in ("1", "true", "yes")


def _int(request: web.Request, key: str, default: int | None) -> int | None:
    value = request.query.get(key, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"invalid value for {key}: {value}") from None


def parse_body(raw: bytes) -> object:
    """The JSON body, None when empty; 400 in the Engine's words when malformed."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"malformed JSON in the request body: {exc}") from None


async def json_body(request: web.Request) -> object:
    return parse_body(await request.read())


def _no_content() -> web.Response:
    return web.Response(status=204)


def _not_modified() -> web.Response:
    return web.Response(status=304)


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    if body is not None and not isinstance(body, dict):
        raise bad_request("the container config must be a JSON object")
    cid, warnings = _manager(request).create(body or {}, request.query.get("name", ""))
    return json_response({"Id": cid, "Warnings": warnings}, status=201)


async def start(request: web.Request) -> web.Response:
    try:
        await _manager(request).start(request.match_info["id"])
    except NotModified:
        return _not_modified()
    return _no_content()


async def stop(request: web.Request) -> web.Response:
    timeout = _int(request, "t", None)
    try:
        await _manager(request).stop(request.match_info["id"], timeout)
    except NotModified:
        return _not_modified()
    return _no_content()


async def kill(request: web.Request) -> web.Response:
    signum = parse_signal(request.query.get("signal"))
    await _manager(request).kill(request.match_info["id"], signum)
    return _no_content()


async def restart(request: web.Request) -> web.Response:
    await _manager(request).restart(request.match_info["id"], _int(request, "t", None))
    return _no_content()


async def pause(request: web.Request) -> web.Response:
    await _manager(request).pause(request.match_info["id"])
    return _no_content()


async def unpause(request: web.Request) -> web.Response:
    await _manager(request).unpause(request.match_info["id"])
    return _no_content()


async def remove(request: web.Request) -> web.Response:
    if _flag(request, "link"):
        raise bad_request("the exec runtime has no links to remove")
    await _manager(request).remove(request.match_info["id"], _flag(request, "force"),
                                   volumes=_flag(request, "v"))
    return _no_content()


async def rename(request: web.Request) -> web.Response:
    _manager(request).rename(request.match_info["id"], request.query.get("name", ""))
    return _no_content()


async def wait(request: web.Request) -> web.StreamResponse:
    """Headers go out at once (the client may start the container only after that);
    the body when the condition is met."""
    manager = _manager(request)
    condition = request.query.get("condition", "")
    manager.get(request.match_info["id"])
    if condition and condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition: {condition}")
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    state = await manager.wait(request.match_info["id"], condition)
    error = {"Message": state.error} if state.error else None
    with contextlib.suppress(ConnectionResetError):  # the client gave up waiting
        await resp.write(json.dumps({"StatusCode": state.exit_code, "Error": error}).encode()
                         + b"\n")
        await resp.write_eof()
    return resp


async def inspect(request: web.Request) -> web.Response:
    manager = _manager(request)
    return json_response(views.inspect(manager, manager.get(request.match_info["id"])))


async def listing(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters", ""), LIST_FILTERS)
    entries = views.listing(_manager(request), _flag(request, "all"),
                            _int(request, "limit", -1) or -1, _flag(request, "size"), filters)
    return json_response(entries)


def routes() -> list[tuple[str, str, object]]:
    return [
        ("POST", "/containers/create", create),
        ("GET", "/containers/json", listing),
        ("GET", "/containers/{id}/json", inspect),
        ("POST", "/containers/{id}/start", start),
        ("POST", "/containers/{id}/stop", stop),
        ("POST", "/containers/{id}/kill", kill),
        ("POST", "/containers/{id}/restart", restart),
        ("POST", "/containers/{id}/rename", rename),
        ("POST", "/containers/{id}/pause", pause),
        ("POST", "/containers/{id}/unpause", unpause),
        ("POST", "/containers/{id}/wait", wait),
        ("GET", "/containers/{id}/logs", handle_logs),
        ("DELETE", "/containers/{id}", remove),
    ]
