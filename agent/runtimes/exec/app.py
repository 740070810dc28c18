"""The aiohttp application: every route with and without a `/vX.Y` prefix, Engine-style
errors and headers, and a 501 for everything the exec runtime does not do."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from flock.agent.runtimes.exec import (
    attach,
    container_api,
    exec_api,
    image_api,
    monitor,
    system,
    volume_api,
)
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import ApiError, bad_request
from flock.agent.runtimes.exec.events import handle_events
from flock.agent.runtimes.exec.jsonresp import json_response
from flock.docker_compat.api_version import version_refusal

log = logging.getLogger(__name__)
VERSION_PREFIX = r"/{_v:v[0-9]+(?:\.[0-9]+)?}"
_PREFIX_RE = re.compile(r"^/v[0-9]+(?:\.[0-9]+)?(?=/)")


def _check_version(request: web.Request) -> None:
    refusal = version_refusal(request.match_info.get("_v", "")[1:])
    if refusal is not None:
        raise bad_request(refusal)


@web.middleware
async def engine_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        _check_version(request)
        return await handler(request)
    except ApiError as exc:
        return json_response({"message": exc.message}, status=exc.status)
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - the client gets a 500, the log the trace
        log.exception("exec runtime: %s %s failed", request.method, request.path)
        return json_response({"message": f"exec runtime error: {exc}"}, status=500)


async def unsupported(request: web.Request) -> web.Response:
    path = _PREFIX_RE.sub("", request.path)
    raise ApiError(501, f"the exec runtime does not support {request.method} {path}; "
                        f"use the docker runtime for it")


async def _engine_headers(request: web.Request, response: web.StreamResponse) -> None:
    for key, value in system.ENGINE_HEADERS.items():
        response.headers.setdefault(key, value)


def build_app(core: object) -> web.Application:
    app = web.Application(middlewares=[engine_errors], client_max_size=0)
    app[CORE] = core
    table = [*system.routes(), *container_api.routes(), *attach.routes(),
             *exec_api.routes(), *monitor.routes(), *image_api.routes(),
             *volume_api.routes(),
             ("GET", "/events", handle_events)]
    for method, path, handler in table:
        app.router.add_route(method, path, handler)
        app.router.add_route(method, VERSION_PREFIX + path, handler)
    app.router.add_route("*", "/{tail:.*}", unsupported)
    app.on_response_prepare.append(_engine_headers)
    return app
