"""Container endpoints: list from memory, create through the scheduler, and every
`/containers/{id}/...` call routed to the node that holds the container.

A reference resolves cluster-wide (full ID, name, `node/name`, unique ID prefix) and the
path is rewritten to the real ID before it goes to the node. Calls that change a
container update its record before the client gets its answer, so a `docker ps` right
after `docker stop` is already right.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import urllib.parse
from collections.abc import Callable

from aiohttp import web

from flock.common import json_codec
from flock.docker_compat.api_version import version_tuple
from flock.docker_compat.humanize import bytes_size
from flock.docker_compat.paths import api_path
from flock.docker_compat.references import hex_name_error, image_identifier
from flock.manager.api.docker import hijack, pins, proxy
from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import DockerError, bad_parameter, json_answer, parse_json_body
from flock.manager.api.docker.ps import node_ip, parse_filters
from flock.manager.api.docker.ps_json import listing_json
from flock.manager.api.docker.ps_refresh import refresh_for_listing
from flock.manager.api.docker.system import cpu_count, engine_headers
from flock.manager.cluster.agent_client import AgentError
from flock.manager.cluster.clients import AGENT_HINT
from flock.manager.cluster.container_names import NameTaken
from flock.manager.cluster.convert import reserved_cpus
from flock.manager.cluster.cpu_shares import engine_shares
from flock.manager.cluster.holding import hold_until_done
from flock.manager.cluster.model import Container, Node
from flock.manager.cluster.records import STATE_AFTER, exited, renamed
from flock.manager.scheduler.scheduler import NoNodeAvailable
from flock.manager.scheduler.scores import Request
from flock.manager.scheduler.spec import (
    RuleError,
    spec_from_create,
)

log = logging.getLogger("flock.manager.containers")

_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


# ------------------------------------------------------------------ helpers
def _flag(call: Call, key: str) -> bool:
    return call.query.get(key, "").lower() in ("1", "true", "yes")


def resolve(call: Call) -> tuple[Container, Node]:
    """The container named in the path and its node; 404 in the Engine's words."""
    container = call.state.resolve(call.params["id"])
    node = call.state.node(container.node_id)
    if node is None:
        raise DockerError(404, f"No such container: {call.params['id']}")
    return container, node


def reachable(call: Call) -> tuple[Container, Node]:
    """resolve(), refused with classic's 500 when the container's node is not healthy
    (api/utils.go getContainerFromVars, api/handlers.go getContainerJSON): the call
    could only wait for an agent that does not answer. Flock adds the node's last
    error, which says why, and what to do."""
    container, node = resolve(call)
    if not node.healthy:
        why = f" ({node.error})" if node.error else ""
        raise DockerError(500, f"Container {call.params['id']} running on unhealthy node "
                               f"{node.name}{why}. {AGENT_HINT}")
    return container, node


def unknown_image_id(body: dict, status: int, data: bytes) -> str:
    """For a create of an image ID that no node has: the engine's 404 message with
    classic's sentence after it, else "". Classic's CLI pulled after that 404 and the
    pull refused the ID (test/integration/api/run.bats looks for "cannot specify
    64-byte hexadecimal strings"); today's CLI does not pull an ID, so it would never
    be said."""
    image = body.get("Image")
    hex_id = image_identifier(image) if isinstance(image, str) else ""
    if status != 404 or not hex_id:
        return ""
    try:
        message = proxy.message_of(json.loads(data))
    except ValueError:
        return ""
    return f"{message}: {hex_name_error(hex_id)}" if message.startswith("No such image") else ""


def node_path(call: Call, container: Container) -> str:
    """The request path with the reference replaced by the container's real ID (the
    route rebuilt, each part encoded: a reference can add no segment of its own)."""
    return call.agent_path(id=container.id)


def conflict(name: str, holder: str) -> DockerError:
    by = f'by container "{holder}"' if holder else "by a container being created"
    return DockerError(
        409, f'Conflict. The container name "/{name}" is already in use {by}. You have '
        "to remove (or rename) that container to be able to reuse that name.")


def check_name(call: Call, name: str) -> None:
    """A fast answer for a bad or taken name; only the claim (`state.reserve`,
    `state.claim_name`) makes the name the caller's."""
    if not _NAME.match(name):
        raise bad_parameter(
            f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    name = name.lstrip("/")
    if call.state.name_taken(name):
        raise conflict(name, call.state.container_names().get(name, ""))


def node_object(node: Node) -> dict:
    """Classic Swarm's `Node` field of a container's inspect."""
    return {"ID": node.id, "IP": node_ip(node), "Addr": node.addr, "Name": node.name,
            "Cpus": node.cpus, "Memory": node.memory, "Labels": dict(node.labels)}


async def refresh(call: Call, node: Node, container_id: str) -> None:
    """Re-read a container after a change; the event stream will catch up if this fails."""
    try:
        await call.cluster.records.refresh(node.id, container_id)
    except AgentError as exc:
        log.warning("refreshing %s on %s: %s", container_id, node.name, exc)


def refresh_later(call: Call, node: Node, container_id: str) -> None:
    """Re-read a container in the background: the answer to the client does not wait
    for it (the record written at once is right for what the client asked)."""
    call.cluster.records.refresh_soon(node.id, container_id)


# ------------------------------------------------------------------ list / create
async def list_containers(call: Call) -> web.StreamResponse:
    try:
        limit = int(call.query.get("limit") or -1)
    except ValueError:
        raise bad_parameter(f"invalid limit: {call.query.get('limit')}") from None
    filters = parse_filters(call.query.get("filters", ""))
    await refresh_for_listing(call, filters)  # classic's --refresh-on-node-filter & co.
    body = listing_json(call.state, call.state.node_map(), show_all=_flag(call, "all"),
                        limit=limit, filters=filters)
    return web.Response(body=body, content_type="application/json")


async def create(call: Call) -> web.StreamResponse:
    name = call.query.get("name", "")
    if name:
        check_name(call, name)
        name = name.lstrip("/")
    body = await call.json()
    if body is None:
        raise bad_parameter("config cannot be empty in order to create a container")
    if not isinstance(body, dict):
        raise bad_parameter("invalid container config: expected a JSON object")
    body, pinned = await pins.from_request(call, body)
    try:
        spec = spec_from_create(body, name)
    except RuleError as exc:
        raise bad_parameter(str(exc)) from None

    async def send(node: Node, payload: bytes):
        exchange, data = await proxy.forward_buffered(call, node, body=payload,
                                                      read_back=True, read_back_later=True)
        return exchange.status, data, exchange.read_back, exchange

    try:
        placed = await call.cluster.placement.place_and_create(body, spec, name, send, pinned)
    except NoNodeAvailable as exc:
        raise DockerError(500, str(exc)) from None
    except NameTaken as exc:
        raise conflict(exc.name, exc.holder) from None
    if placed.status != 201:
        if refusal := unknown_image_id(body, placed.status, placed.data):
            raise DockerError(404, refusal)
        return proxy.buffered_response(placed.extra, placed.data)
    answer = json_codec.loads(placed.data)
    if placed.warnings:
        answer["Warnings"] = list(answer.get("Warnings") or []) + placed.warnings
    return json_answer(answer, status=201)


async def prune(call: Call) -> web.StreamResponse:
    """Fan out to every healthy node; the answers are merged."""
    nodes = call.state.healthy_nodes()
    results = await asyncio.gather(
        *(proxy.node_json(call, n, "POST", "/containers/prune", call.query_string)
          for n in nodes), return_exceptions=True)
    deleted: list[str] = []
    reclaimed = 0
    for node, result in zip(nodes, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("prune on %s: %s", node.name, result)
            continue
        status, answer = result
        if status == 200 and isinstance(answer, dict):
            deleted += answer.get("ContainersDeleted") or []
            reclaimed += int(answer.get("SpaceReclaimed") or 0)
        elif status >= 400:
            raise DockerError(status, f"{node.name}: {proxy.message_of(answer)}")
    for container_id in deleted:
        call.cluster.records.forget(container_id)
    return json_answer({"ContainersDeleted": deleted or None,
                              "SpaceReclaimed": reclaimed})


# ------------------------------------------------------------------ one container
async def inspect(call: Call) -> web.StreamResponse:
    container, node = reachable(call)
    exchange, data = await proxy.forward_buffered(call, node, node_path(call, container))
    if exchange.status != 200:
        if exchange.status == 404:
            call.cluster.records.forget(container.id)
        return proxy.buffered_response(exchange, data)
    answer = json_codec.loads(data)
    answer["Node"] = node_object(node)
    return json_answer(answer)


async def passthrough(call: Call) -> web.StreamResponse:
    """Streamed as it comes: logs, stats, top, export, archive, changes, resize."""
    container, node = reachable(call)
    return await proxy.forward(call, node, node_path(call, container))


# The wait conditions for which every engine since API 1.30 writes its answer's head
# before it waits, and the API version from which it does (moby's postContainersWait,
# api/server/router/container/container_routes.go: the head at once from 1.30; a
# "removed" wait that fails answers an empty body before 1.34). "not-running" by name
# was refused as an invalid condition by older engines: the engine decides that one.
_HEAD_AT_ONCE = {"": "1.30", "next-exit": "1.30", "removed": "1.34"}


def head_at_once(call: Call) -> bool:
    """Whether the manager may write a wait's head itself, before the node's: when the
    engine would write it at once too, whatever came next."""
    since = _HEAD_AT_ONCE.get(call.query.get("condition", ""))
    return since is not None and (
        not call.version or version_tuple(call.version) >= version_tuple(since))


def wait_failure(message: str) -> bytes:
    """A wait that failed after its head went out: the body the engine writes then
    (container.WaitResponse with its Error). The exit status is unknown: -1."""
    return json_codec.dumps({"Error": {"Message": message}, "StatusCode": -1}) + b"\n"


async def wait(call: Call) -> web.StreamResponse:
    """Streamed like the engine's, but the exit is recorded before the client reads it,
    so that the `docker ps` a script runs next already shows the container exited.

    `docker run` sends its start only once the wait's head is in (the engine must know
    of the wait before the container can exit). So the manager sends the wait to the
    node and writes the head itself at once, as the engine would, rather than after
    two more hops; the agent keeps the order that the client asked for, holding a start
    until the engine's head of a wait sent before it is in (agent/wait_heads.py). A
    wait that then fails (the engine's 404, the node gone) says so in the body, as the
    engine's own failures after its head do."""
    container, node = reachable(call)
    path = node_path(call, container)
    sent = proxy.send_head_first(call, node, path) if head_at_once(call) else None
    if sent is None:
        exchange = await proxy.open_exchange(call, node, path=path, head_first=True)
        return await proxy.relay(call, exchange, see=_exit_recorder(call, node, container,
                                                                  exchange))
    # The engine's fields, which the node's head would have brought.
    response = web.StreamResponse(status=200, headers=engine_headers(call))
    response.content_type = "application/json"
    try:
        await response.prepare(call.request)
        exchange = await sent.exchange()
    except AgentError as exc:
        await response.write(wait_failure(f"node {node.name}: {exc}. {AGENT_HINT}"))
        return response
    except BaseException:
        sent.cancel()
        raise
    if exchange.status != 200:
        try:
            data = await exchange.body()
        except AgentError:
            data = b""
        if exchange.status == 404:
            call.cluster.records.forget(container.id)
        await response.write(wait_failure(_failure_message(exchange.status, data)))
        return response
    return await proxy.relay_body(call, response, exchange,
                                  see=_exit_recorder(call, node, container, exchange))


def _failure_message(status: int, data: bytes) -> str:
    try:
        return proxy.message_of(json_codec.loads(data))
    except ValueError:
        return data.decode(errors="replace").strip() or f"status {status}"


def _exit_recorder(call: Call, node: Node, container: Container,
                   exchange) -> Callable[[bytes], None]:
    """Shown the wait's answer as it comes: records the exit once the body is whole."""
    seen = bytearray()

    def record_exit(chunk: bytes) -> None:
        seen.extend(chunk)
        try:
            answer = json.loads(seen)
        except ValueError:
            return
        current = call.state.container(container.id)
        if exchange.status != 200 or not isinstance(answer, dict) or current is None:
            return
        if call.query.get("condition") == "removed":
            # `docker run --rm`: the engine answers only once the container is gone.
            call.cluster.records.forget(container.id)
            return
        call.cluster.records.write(exited(current, int(answer.get("StatusCode") or 0)))
        refresh_later(call, node, container.id)

    return record_exit


async def change(call: Call) -> web.StreamResponse:
    """start, stop, kill, restart, pause, unpause, update: record the result first."""
    container, node = reachable(call)
    path = node_path(call, container)
    records = call.cluster.records
    action = path.rsplit("/", 1)[-1]
    with records.changing(node.id, container.id):
        # Only a start or (un)pause leaves a state certain without reading: for those
        # the agent may answer before its read-back (AgentClient.request).
        exchange, data = await proxy.forward_buffered(
            call, node, path, read_back=True, read_back_later=action in STATE_AFTER)
    if exchange.status < 300:
        if not records.change(node.id, container, action, exchange.read_back):
            await refresh(call, node, container.id)
    elif exchange.status == 404:
        records.forget(container.id)
    return proxy.buffered_response(exchange, data)


async def update(call: Call) -> web.StreamResponse:
    """`docker update`: new reservations (-m, -c, --cpus) are checked against the node's
    capacity with the scheduler's arithmetic and held while the engine applies them."""
    container, node = reachable(call)
    raw = await call.request.read()
    body = parse_json_body(raw)
    if not isinstance(body, dict):
        raise bad_parameter("invalid update config: expected a JSON object")
    cpus, memory = await _updated_reservation(call, container, node, body)
    extra_cpus = max(cpus - container.reserved_cpus, 0.0)
    extra_memory = max(memory - container.reserved_memory, 0)
    state = call.state
    if extra_cpus or extra_memory:
        usage = state.usage(node.id)
        request = Request(extra_cpus, extra_memory, call.cluster.scheduler.overcommit)
        if request.weight(node.cpus, node.memory, usage.cpus, usage.memory) is None:
            raise DockerError(
                409, f"Cannot update container {call.params['id']}: node {node.name} has "
                f"{cpu_count(usage.cpus)} of {node.cpus} CPUs and {bytes_size(usage.memory)} of "
                f"{bytes_size(node.memory)} reserved; {cpu_count(cpus)} CPUs and "
                f"{bytes_size(memory)} for this container would not fit")
    if body.get("CpuShares"):  # -c N: N CPUs, sent as this node's shares for them
        raw = json.dumps(dict(body, CpuShares=engine_shares(body["CpuShares"],
                                                            node.cpus))).encode()
    token = state.reserve(node.id, "", extra_cpus, extra_memory)
    try:
        exchange, data = await proxy.forward_buffered(call, node, node_path(call, container),
                                                      body=raw)
        if exchange.status < 300:
            await refresh(call, node, container.id)
    finally:
        state.release(token)
    return proxy.buffered_response(exchange, data)


async def _updated_reservation(call: Call, container: Container, node: Node,
                               body: dict) -> tuple[float, int]:
    """(CPUs, memory) the container reserves once `body` applies; 0 or absent leaves a
    value as it is, as in the Engine."""
    for key in ("Memory", "CpuShares", "NanoCpus"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value < 0):
            raise bad_parameter(f"{key} must be a non-negative number, got {value!r}")
    if not any(body.get(key) for key in ("Memory", "CpuShares", "NanoCpus")):
        return container.reserved_cpus, container.reserved_memory
    status, current = await proxy.node_json(call, node, "GET",
                                            api_path("containers", container.id, "json"))
    if status != 200 or not isinstance(current, dict):
        raise DockerError(status if status >= 400 else 500, proxy.message_of(current))
    host = dict(current.get("HostConfig") or {})
    host.update({k: body[k] for k in ("Memory", "NanoCpus") if body.get(k)})
    if body.get("CpuShares"):
        host["CpuShares"] = engine_shares(body["CpuShares"], node.cpus)
    return reserved_cpus(host, node.cpus), int(host.get("Memory") or 0)


async def commit(call: Call) -> web.StreamResponse:
    """`docker commit`: on the container's node, so the new image exists there only."""
    ref = call.query.get("container", "")
    if not ref:
        raise bad_parameter("the container to commit is required: give ?container=")
    container = call.state.resolve(ref)
    node = call.state.node(container.node_id)
    if node is None:
        raise DockerError(404, f"No such container: {ref}")
    query = [(k, container.id if k == "container" else v) for k, v in call.query.items()]
    exchange = await proxy.open_exchange(call, node, query=urllib.parse.urlencode(query))
    try:
        data = await exchange.body()
    finally:
        exchange.cancel()
    if exchange.status < 300:
        try:
            await call.cluster.records.load_images(node.id)
        except AgentError as exc:
            log.debug("images of %s after a commit: %s", node.name, exc)
    return proxy.buffered_response(exchange, data)


async def rename(call: Call) -> web.StreamResponse:
    container, node = resolve(call)
    new = call.query.get("name", "")
    if not new:
        raise bad_parameter("name cannot be empty")
    name = new.lstrip("/")
    if name == container.name:
        return await change(call)
    check_name(call, new)
    try:
        token = call.state.claim_name(name)
    except NameTaken as exc:
        raise conflict(exc.name, exc.holder) from None
    return await hold_until_done(call.state, token, _rename(call, container, name))


async def _rename(call: Call, container: Container, name: str) -> web.StreamResponse:
    """Rename on the node, and record the new name before the claim on it goes."""
    answer = await change(call)
    current = call.state.container(container.id)
    if answer.status < 300 and current is not None and current.name != name:
        call.cluster.records.write(renamed(current, name))
    return answer


async def remove(call: Call) -> web.StreamResponse:
    container, node = resolve(call)
    exchange, data = await proxy.forward_buffered(call, node, node_path(call, container))
    if exchange.status < 300 or exchange.status == 404:
        call.cluster.records.forget(container.id)
    return proxy.buffered_response(exchange, data)


async def attach(call: Call) -> web.StreamResponse:
    container, node = reachable(call)
    return await hijack.serve(call, node, node_path(call, container))


async def exec_create(call: Call) -> web.StreamResponse:
    container, node = resolve(call)
    exchange, data = await proxy.forward_buffered(call, node, node_path(call, container))
    if exchange.status == 201:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            call.cluster.exec_nodes[json.loads(data)["Id"]] = node.id
    return proxy.buffered_response(exchange, data)


ROUTES = [
    ("GET", "/containers/json", list_containers),
    ("POST", "/containers/create", create),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id*}/json", inspect),
    ("POST", "/containers/{id*}/attach", attach),
    ("POST", "/containers/{id*}/exec", exec_create),
    ("POST", "/containers/{id*}/rename", rename),
    ("DELETE", "/containers/{id*}", remove),
    *(("POST", f"/containers/{{id*}}/{verb}", change)
      for verb in ("start", "stop", "kill", "restart", "pause", "unpause")),
    ("POST", "/containers/{id*}/update", update),
    ("POST", "/containers/{id*}/wait", wait),
    ("POST", "/commit", commit),
    *((method, f"/containers/{{id*}}/{verb}", passthrough) for method, verb in (
        ("GET", "logs"), ("GET", "top"), ("GET", "stats"), ("GET", "changes"),
        ("GET", "export"), ("POST", "resize"), ("GET", "archive"),
        ("HEAD", "archive"), ("PUT", "archive"))),
]
