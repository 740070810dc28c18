"""Reading a container back right after a change, inside the same DockerCall.

A `docker run` through the manager is a create and a start; after each the manager
wants the container's exact record (state, ports, addresses, the engine's list entry).
Asking for it separately costs two more round trips per change, and at a thousand nodes
those round trips are most of the work. The agent is next to the runtime, so it reads
the container there and returns it with the answer. `read_at_ns` tells the manager
which of the container's events the read already reflects.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from flock.protos import agent_pb2

# Answers one request the way DockerCall does (for the real runtime, over its socket).
Call = Callable[[agent_pb2.DockerRequest, bytes], Awaitable[agent_pb2.DockerCallReply]]

log = logging.getLogger(__name__)

_CONTAINERS = "/containers/"
_FULL_ID = re.compile(r"[0-9a-f]{64}")

# How long an inspect may lag behind the list answer before the read-back goes without
# it. An inspect not waiting for the container's lock ends within 0.3 ms of the list at
# p99 (both at once, on an idle engine: list 0.5 ms, inspect 0.46 ms at p50).
INSPECT_GRACE = 0.001


def container_ref(req: agent_pb2.DockerRequest, reply: agent_pb2.DockerCallReply) -> str:
    """The container a successful request was about: the new ID for a create, the
    path's reference for `/containers/{ref}/{verb}`; "" when it was about none (a
    list, a removal) or the answer is not one to read after."""
    if not 200 <= reply.response.status < 300 or not req.path.startswith(_CONTAINERS):
        return ""
    rest = req.path[len(_CONTAINERS):]
    if rest == "create" and req.method.upper() == "POST":
        try:
            answer = json.loads(reply.body)
        except ValueError:
            return ""
        return answer.get("Id", "") if isinstance(answer, dict) else ""
    return path_ref(req)


def path_ref(req: agent_pb2.DockerRequest) -> str:
    """The container a change `POST /containers/{ref}/{verb}` is about, from its path
    alone (known before the answer); "" for any other request."""
    if req.method.upper() != "POST" or not req.path.startswith(_CONTAINERS):
        return ""
    ref, slash, verb = req.path[len(_CONTAINERS):].partition("/")
    if not slash or not verb or "/" in verb:
        return ""
    return ref


# The verbs of `POST /containers/{ref}/{verb}` that change what a read of the container
# says. Not a wait (it lasts as long as the container runs: `docker run` sends it before
# the start), an exec, an attach or a resize.
CHANGES = frozenset({"start", "stop", "restart", "kill", "pause", "unpause", "rename",
                     "update"})


def verb_ref(req: agent_pb2.DockerRequest, verbs: frozenset[str]) -> str:
    """The container of a `POST /containers/{ref}/{verb}` whose verb is one of `verbs`,
    from its path alone; "" for any other request."""
    ref = path_ref(req)
    return ref if ref and req.path.rpartition("/")[2] in verbs else ""


def changed_ref(req: agent_pb2.DockerRequest) -> str:
    """The container a request changes, from its path alone; "" for any other request."""
    return verb_ref(req, CHANGES)


async def read_back(call: Call, req: agent_pb2.DockerRequest,
                    reply: agent_pb2.DockerCallReply) -> agent_pb2.ContainerRead | None:
    """Fills `reply` with the container it was about, read back, when there is one, and
    returns that read. A failed read leaves the fields empty, and never fails the change
    itself, which has happened: the manager then reads the container on its own. The
    inspect is given up after INSPECT_GRACE past the list answer (see _read_by_id)."""
    ref = container_ref(req, reply)
    read = await read_container(call, req, ref, INSPECT_GRACE) if ref else None
    if read is not None:
        reply.inspect, reply.listing, reply.read_at_ns = (
            read.inspect, read.listing, read.read_at_ns)
    return read


async def read_container(call: Call, req: agent_pb2.DockerRequest, ref: str,
                         grace: float | None = None) -> agent_pb2.ContainerRead | None:
    """Container `ref` read after `req` changed it; None when it cannot be read (gone,
    the runtime failed: logged). `grace`: see _read_by_id; None waits for the inspect."""
    try:
        return await _read(call, req, ref, grace)
    except Exception as exc:  # noqa: BLE001 - the answer to the change must still go back
        log.info("reading back %s after %s %s: %s", ref, req.method, req.path, exc)
        return None


async def _read(call: Call, req: agent_pb2.DockerRequest, ref: str,
                grace: float | None) -> agent_pb2.ContainerRead | None:
    stamp = time.time_ns()
    if _FULL_ID.fullmatch(ref):
        return await _read_by_id(call, req, ref, stamp, grace)
    inspect = await call(_inspect_request(req, ref), b"")
    if inspect.response.status != 200:
        return None
    try:
        full_id = json.loads(inspect.body)["Id"]
    except (ValueError, KeyError, TypeError):
        return None
    listing = await call(_list_request(req, full_id), b"")
    return agent_pb2.ContainerRead(
        id=full_id, inspect=inspect.body, read_at_ns=stamp,
        listing=listing.body if listing.response.status == 200 else b"")


async def _read_by_id(call: Call, req: agent_pb2.DockerRequest, full_id: str, stamp: int,
                      grace: float | None) -> agent_pb2.ContainerRead | None:
    """Both reads at once. The list answer comes from the engine's lock-free view; an
    inspect takes the container's lock, which the engine holds while it cleans up after
    an exit (about 100 ms after a `docker run -d busybox true`). With a `grace`, once
    the list has answered the inspect gets that much more and is dropped after it: the
    answer to the change then goes back with the list entry alone, as soon as a direct
    call would have, and the manager reads the container in full later."""
    inspect = asyncio.ensure_future(call(_inspect_request(req, full_id), b""))
    try:
        listing = await call(_list_request(req, full_id), b"")
        done, _ = await asyncio.wait({inspect}, timeout=grace)
    finally:
        _drop(inspect)
    if listing.response.status != 200:
        return None
    read = agent_pb2.ContainerRead(id=full_id, listing=listing.body, read_at_ns=stamp)
    if done:
        answer = inspect.result()
        if answer.response.status != 200:
            return None
        read.inspect = answer.body
    return read


def _drop(task: asyncio.Future) -> None:
    """Cancel `task` if it still runs; else take its error, so that an inspect that
    failed while the list was still being read is not reported as never retrieved."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def _inspect_request(req: agent_pb2.DockerRequest, ref: str) -> agent_pb2.DockerRequest:
    return agent_pb2.DockerRequest(
        method="GET", path=f"{_CONTAINERS}{urllib.parse.quote(ref, safe='')}/json",
        api_version=req.api_version, request_id=req.request_id)


def _list_request(req: agent_pb2.DockerRequest, full_id: str) -> agent_pb2.DockerRequest:
    return agent_pb2.DockerRequest(
        method="GET", path=f"{_CONTAINERS}json", api_version=req.api_version,
        request_id=req.request_id,
        query="all=1&filters=" + urllib.parse.quote(json.dumps({"id": [full_id]})))
