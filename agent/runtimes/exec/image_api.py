"""HTTP handlers for /images."""

from __future__ import annotations

import json
import os
import tempfile

from aiohttp import web

from flock.agent.runtimes.exec import references
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.filters import parse_filters
from flock.agent.runtimes.exec.images import ImageManager, check_import_source, no_registry
from flock.agent.runtimes.exec.jsonresp import json_response

IMAGE_FILTERS = {"dangling", "label", "reference", "before", "since"}


def _images(request: web.Request) -> ImageManager:
    return request.app[CORE].images


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


async def create(request: web.Request) -> web.StreamResponse:
    """`docker import -` (fromSrc=-); a pull (fromImage) has no registry to go to."""
    query = request.query
    if "fromImage" in query:
        ref = query["fromImage"]
        raise no_registry(f"{ref}:{query['tag']}" if query.get("tag") else ref)
    if "fromSrc" not in query:
        raise bad_request("one of fromImage or fromSrc is required")
    check_import_source(query["fromSrc"])
    ref = query.get("repo", "")
    if ref:
        ref = references.normalize(ref, query.get("tag", ""))
    images = _images(request)
    fd, tar_path = tempfile.mkstemp(prefix=".upload-", dir=images.store.root)
    try:
        with os.fdopen(fd, "wb") as fh:
            async for chunk in request.content.iter_chunked(1 << 20):
                fh.write(chunk)
        record = await images.import_tar(tar_path, ref, query.getall("changes", []),
                                         query.get("message", ""))
    finally:
        os.unlink(tar_path)
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    await resp.write(json.dumps({"status": record.id}).encode() + b"\r\n")
    await resp.write_eof()
    return resp


async def listing(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters", ""), IMAGE_FILTERS)
    if "filter" in request.query:  # the old single-reference form
        filters.setdefault("reference", []).append(request.query["filter"])
    return json_response(_images(request).listing(filters))


async def inspect(request: web.Request) -> web.Response:
    images = _images(request)
    return json_response(images.inspect(images.get(request.match_info["name"])))


async def delete(request: web.Request) -> web.Response:
    force = _truthy(request.query.get("force"))
    return json_response(_images(request).remove(request.match_info["name"], force))


async def tag(request: web.Request) -> web.Response:
    images = _images(request)
    record = images.get(request.match_info["name"])
    repo = request.query.get("repo", "")
    if not repo:
        raise bad_request("repository name must have at least one component")
    images.tag(record, references.normalize(repo, request.query.get("tag", "")))
    return web.Response(status=201)


def routes() -> list[tuple[str, str, object]]:
    return [
        ("POST", "/images/create", create),
        ("GET", "/images/json", listing),
        ("GET", "/images/{name:.+}/json", inspect),
        ("POST", "/images/{name:.+}/tag", tag),
        ("DELETE", "/images/{name:.+}", delete),
    ]
