"""The hollow runtime's Docker API: the exec runtime's application frame (version
prefixes, Engine errors, `_ping`, `version`, `/events`) over HollowNode handlers."""

from __future__ import annotations

import json
import platform

from aiohttp import web

from flock.agent.runtimes.exec import system
from flock.agent.runtimes.exec.app import VERSION_PREFIX, engine_errors
from flock.agent.runtimes.exec.container_api import _flag
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import ApiError, bad_request
from flock.agent.runtimes.exec.events import handle_events
from flock.agent.runtimes.exec.jsonresp import json_response
from flock.agent.runtimes.exec.timefmt import now_rfc
from flock.agent.runtimes.hollow import ops
from flock.agent.runtimes.hollow.store import HollowContainer, HollowNode, image_id
from flock.docker_compat.api_version import API_VERSION, MIN_API_VERSION
from flock.docker_compat.stdcopy import STDOUT, frame

VERSION = "flock-hollow/0.1.0"
HEADERS = {**system.ENGINE_HEADERS, "Server": f"Docker/{VERSION} (linux)"}


def _node(request: web.Request) -> HollowNode:
    return request.app[CORE].node


def _container(request: web.Request) -> HollowContainer:
    return _node(request).get(request.match_info["id"])


def _operation(op: ops.Operation):
    """An aiohttp handler around one of ops' transport-free operations."""
    async def handler(request: web.Request) -> web.Response:
        ask = ops.Ask(request.query, request.match_info.get("id", ""),
                      await request.read() if request.body_exists else b"")
        status, payload = op(_node(request), ask)
        if payload is None:
            return web.Response(status=status)
        return json_response(payload, status=status)

    handler.__name__ = op.__name__
    return handler


create = _operation(ops.create)
list_containers = _operation(ops.list_containers)
inspect = _operation(ops.inspect)
start = _operation(ops.start)
stop = _operation(ops.stop)
restart = _operation(ops.restart)
kill = _operation(ops.kill)
remove = _operation(ops.remove)


async def wait(request: web.Request) -> web.StreamResponse:
    """The head goes out at once, the body when the condition is met: `docker run`
    waits for the head before it starts the container (as dockerd's handler does)."""
    condition = request.query.get("condition", "") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition: {condition}")
    node, container = _node(request), _container(request)
    waiting = node.waiter(container, condition)
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        code = await waiting
    finally:
        waiting.cancel()
    await response.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
    await response.write_eof()
    return response


async def logs(request: web.Request) -> web.Response:
    """One line, as a container that printed its name and stopped talking would give."""
    container = _container(request)
    if not (_flag(request, "stdout") or _flag(request, "stderr")):
        raise bad_request("You must choose at least one stream")
    if not _flag(request, "stdout") or container.status == "created":
        return web.Response(body=b"", content_type="application/octet-stream")
    line = f"hollow container {container.name} ({container.image})\n".encode()
    if container.config.get("Tty"):
        return web.Response(body=line, content_type="application/vnd.docker.raw-stream")
    return web.Response(body=frame(STDOUT, line),
                        content_type="application/vnd.docker.multiplexed-stream")


async def pull(request: web.Request) -> web.Response:
    """`docker pull`: the image is present at once; the progress stream has one line."""
    name = request.query.get("fromImage", "")
    if not name:
        raise bad_request("fromImage is required: the hollow runtime does not import "
                          "archives")
    tag = request.query.get("tag", "")
    ref = _node(request).pull(f"{name}:{tag}" if tag and "@" not in name else name)
    line = {"status": f"Status: Downloaded newer image for {ref}"}
    return web.Response(body=(json.dumps(line) + "\r\n").encode(),
                        content_type="application/json")


async def images(request: web.Request) -> web.Response:
    refs = _node(request).images
    return json_response([{"Id": image_id(r), "ParentId": "", "RepoTags": [r],
                           "RepoDigests": [], "Created": 0, "Size": 0, "SharedSize": -1,
                           "VirtualSize": 0, "Labels": {}, "Containers": -1} for r in refs])


async def info(request: web.Request) -> web.Response:
    return json_response(info_body(request.app[CORE]))


_INFO_TEMPLATE: dict = {}


def info_body(core) -> dict:
    """The exec runtime's /info shape with the hollow node's size, name and labels.

    The machine facts are gathered once per process (the exec builder reads /proc and
    /etc, which a thousand agents heartbeating every few seconds cannot afford); only
    the node's own fields are filled in per call."""
    if not _INFO_TEMPLATE:
        _INFO_TEMPLATE.update(system.info_body(core))
        _INFO_TEMPLATE.update(
            Driver="hollow", DriverStatus=[], Runtimes={"hollow": {"path": "in-memory"}},
            DefaultRuntime="hollow", Isolation="none", SecurityOptions=[], Warnings=[],
            ServerVersion=VERSION, DockerRootDir="", NFd=0, KernelVersion=platform.release())
    counts = core.node.counts()
    body = dict(_INFO_TEMPLATE)
    body.update(ID=core.engine_id, Containers=counts["total"],
                ContainersRunning=counts["running"], ContainersStopped=counts["stopped"],
                Images=len(core.node.images), NEventsListener=len(core.node.bus.queues),
                SystemTime=now_rfc(), NCPU=core.cpus, MemTotal=core.memory,
                Name=core.node_name, Labels=[f"{k}={v}" for k, v in sorted(core.labels.items())])
    return body


def version_body() -> dict:
    kernel = platform.release()
    details = {"ApiVersion": API_VERSION, "Arch": system.ARCH, "BuildTime": "",
               "Experimental": "false", "GitCommit": "", "GoVersion": "",
               "KernelVersion": kernel, "MinAPIVersion": MIN_API_VERSION, "Os": "linux"}
    return {"Platform": {"Name": "Flock hollow runtime"},
            "Components": [{"Name": "Engine", "Version": VERSION, "Details": details}],
            "Version": VERSION, "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION, "GitCommit": "", "GoVersion": "",
            "Os": "linux", "Arch": system.ARCH, "KernelVersion": kernel, "BuildTime": ""}


async def version(request: web.Request) -> web.Response:
    return json_response(version_body())


async def unsupported(request: web.Request) -> web.Response:
    raise ApiError(501, f"the hollow runtime does not support {request.method} "
                        f"{request.path}")


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    for key, value in HEADERS.items():
        response.headers.setdefault(key, value)


def routes() -> list[tuple[str, str, object]]:
    return [
        *system.routes()[:2],  # _ping (GET, HEAD)
        ("GET", "/version", version),
        ("GET", "/info", info),
        *system.routes()[4:],  # networks, volumes, plugins: none
        ("POST", "/containers/create", create),
        ("GET", "/containers/json", list_containers),
        ("GET", "/containers/{id}/json", inspect),
        ("POST", "/containers/{id}/start", start),
        ("POST", "/containers/{id}/stop", stop),
        ("POST", "/containers/{id}/restart", restart),
        ("POST", "/containers/{id}/kill", kill),
        ("POST", "/containers/{id}/wait", wait),
        ("GET", "/containers/{id}/logs", logs),
        ("DELETE", "/containers/{id}", remove),
        ("GET", "/images/json", images),
        ("POST", "/images/create", pull),
        ("GET", "/events", handle_events),
    ]


def build_app(core: object) -> web.Application:
    app = web.Application(middlewares=[engine_errors], client_max_size=0)
    app[CORE] = core
    for method, path, handler in routes():
        app.router.add_route(method, path, handler)
        app.router.add_route(method, VERSION_PREFIX + path, handler)
    app.router.add_route("*", "/{tail:.*}", unsupported)
    app.on_response_prepare.append(_headers)
    return app
