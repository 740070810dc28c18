"""HTTP handlers for /volumes (`docker volume create/ls/inspect/rm/prune`)."""

from __future__ import annotations

from aiohttp import web

from flock.agent.runtimes.exec.container_api import json_body
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.filters import parse_filters
from flock.agent.runtimes.exec.jsonresp import json_response
from flock.agent.runtimes.exec.volumes import VOLUME_FILTERS, VolumeManager


def _volumes(request: web.Request) -> VolumeManager:
    return request.app[CORE].containers.volumes


def _text_map(body: dict, key: str) -> dict:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(f"{key} must be an object of strings")
    return value


async def create(request: web.Request) -> web.Response:
    body = await json_body(request) or {}
    if not isinstance(body, dict):
        raise bad_request("the volume config must be a JSON object")
    name = body.get("Name") or ""
    if not isinstance(name, str):
        raise bad_request("Name must be a string")
    volumes = _volumes(request)
    record = volumes.create(name, _text_map(body, "Labels"), str(body.get("Driver") or ""),
                            _text_map(body, "DriverOpts"))
    return json_response(volumes.view(record), status=201)


async def listing(request: web.Request) -> web.Response:
    volumes = _volumes(request)
    filters = parse_filters(request.query.get("filters", ""), VOLUME_FILTERS)
    return json_response({"Volumes": [volumes.view(r) for r in volumes.listing(filters)],
                          "Warnings": None})


async def inspect(request: web.Request) -> web.Response:
    volumes = _volumes(request)
    return json_response(volumes.view(volumes.get(request.match_info["name"])))


async def remove(request: web.Request) -> web.Response:
    force = request.query.get("force", "").lower() in ("1", "true", "yes")
    _volumes(request).remove(request.match_info["name"], force)
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters", ""), {"label"})
    deleted, reclaimed = _volumes(request).prune(filters)
    return json_response({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})


def routes() -> list[tuple[str, str, object]]:
    return [
        ("GET", "/volumes", listing),
        ("POST", "/volumes/create", create),
        ("POST", "/volumes/prune", prune),
        ("GET", "/volumes/{name}", inspect),
        ("DELETE", "/volumes/{name}", remove),
    ]
