"""HTTP handlers for /images."""

from __future__ import annotations

import json
import os
import tempfile

from aiohttp import web

from flock.agent.runtimes.exec import references
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import ApiError, bad_request
from flock.agent.runtimes.exec.filters import parse_filters
from flock.agent.runtimes.exec.images import ARCH, ImageManager, check_import_source
from flock.agent.runtimes.exec.jsonresp import json_response
from flock.agent.runtimes.exec.registry import auth, login, pull, push
from flock.agent.runtimes.exec.registry.progress import ProgressStream

IMAGE_FILTERS = {"dangling", "label", "reference", "before", "since"}


def _images(request: web.Request) -> ImageManager:
    return request.app[CORE].images


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


async def create(request: web.Request) -> web.StreamResponse:
    """`docker pull` (fromImage) or `docker import -` (fromSrc=-)."""
    query = request.query
    if "fromImage" in query:
        return await pull_image(request)
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


async def pull_image(request: web.Request) -> web.StreamResponse:
    """Errors before the first progress line are HTTP errors, later ones `error` lines:
    the docker CLI reads both, as it does from dockerd."""
    query = request.query
    # A malformed name is the client's error (400) before anything else is said of it.
    ref = references.normalize(query["fromImage"], query.get("tag", ""))
    if not query.get("tag") and "@" not in query["fromImage"] \
            and not references.split(query["fromImage"])[1]:
        raise ApiError(501, "the exec runtime pulls one tag at a time: name a tag "
                            "(docker pull --all-tags is not supported)")
    if query.get("platform") and query["platform"] not in (f"linux/{ARCH}", "linux"):
        raise ApiError(501, f"the exec runtime runs linux/{ARCH} images only, not "
                            f"{query['platform']}")
    images = _images(request)
    out = ProgressStream(request)
    creds = auth.from_header(request.headers.get("X-Registry-Auth"))
    images.pulls += 1
    try:
        pulled = await pull.fetch(ref, creds, images.insecure_registries, images.layers,
                                  ARCH, out, set(images.records))
        fresh = images.find(pulled.config_digest) is None
        await images.add_pulled(pulled)
        tag_or_digest = ref.rpartition("@")[2] if "@" in ref else references.split(ref)[1]
        if not out.started:
            await out.status(f"Pulling from {references.remote(ref).path}", tag_or_digest)
        await out.status(f"Digest: {pulled.repo_digest.rpartition('@')[2]}")
        await out.status(f"Status: {'Downloaded newer image' if fresh else 'Image is up to date'}"
                         f" for {ref}")
    except ApiError as exc:
        if not out.started:
            raise
        await out.error(exc.message)
    finally:
        images.pulls -= 1
    return await out.finish()


async def push_image(request: web.Request) -> web.StreamResponse:
    images = _images(request)
    name = request.match_info["name"]
    ref = references.normalize(name, request.query.get("tag", ""))
    record = images.get(ref)
    out = ProgressStream(request)
    creds = auth.from_header(request.headers.get("X-Registry-Auth"))
    try:
        await push.push(images, record, ref, creds, out)
    except ApiError as exc:
        if not out.started:
            raise
        await out.error(exc.message)
    return await out.finish()


async def registry_login(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("invalid auth configuration: malformed JSON") from None
    return json_response(await login.login(body, _images(request).insecure_registries))


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
        ("POST", "/images/{name:.+}/push", push_image),
        ("POST", "/auth", registry_login),
        ("DELETE", "/images/{name:.+}", delete),
    ]
