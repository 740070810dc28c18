"""Reading a container back right after a change, inside the same DockerCall.

A `docker run` through the manager is a create and a start; after each the manager
wants the container's exact record (state, ports, addresses, the engine's list entry).
Asking for it separately costs two more round trips per change, and at a thousand nodes
those round trips are most of the work. The agent is next to the runtime, so it reads
the container there and returns it with the answer. `read_at_ns` tells the manager
which of the container's events the read already reflects.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable

from flock.protos import agent_pb2

# Answers one request the way DockerCall does (for the real runtime, over its socket).
Call = Callable[[agent_pb2.DockerRequest, bytes], Awaitable[agent_pb2.DockerCallReply]]

log = logging.getLogger(__name__)

_CONTAINERS = "/containers/"


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
    ref, slash, verb = rest.partition("/")
    if req.method.upper() != "POST" or not slash or not verb or "/" in verb:
        return ""
    return ref


async def read_back(call: Call, req: agent_pb2.DockerRequest,
                    reply: agent_pb2.DockerCallReply) -> agent_pb2.DockerCallReply:
    """`reply`, with the container it was about read back when there is one. A failed
    read leaves the fields empty, and never fails the change itself, which has
    happened: the manager then reads the container on its own."""
    ref = container_ref(req, reply)
    if not ref:
        return reply
    try:
        return await _read(call, req, reply, ref)
    except Exception as exc:  # noqa: BLE001 - the answer to the change must still go back
        log.info("reading back %s after %s %s: %s", ref, req.method, req.path, exc)
        return reply


async def _read(call: Call, req: agent_pb2.DockerRequest, reply: agent_pb2.DockerCallReply,
                ref: str) -> agent_pb2.DockerCallReply:
    stamp = time.time_ns()
    inspect = await call(agent_pb2.DockerRequest(
        method="GET", path=f"{_CONTAINERS}{urllib.parse.quote(ref, safe='')}/json",
        api_version=req.api_version, request_id=req.request_id), b"")
    if inspect.response.status != 200:
        return reply
    try:
        full_id = json.loads(inspect.body)["Id"]
    except (ValueError, KeyError, TypeError):
        return reply
    listing = await call(agent_pb2.DockerRequest(
        method="GET", path=f"{_CONTAINERS}json", api_version=req.api_version,
        request_id=req.request_id,
        query="all=1&filters=" + urllib.parse.quote(json.dumps({"id": [full_id]}))), b"")
    reply.inspect = inspect.body
    if listing.response.status == 200:
        reply.listing = listing.body
    reply.read_at_ns = stamp
    return reply
