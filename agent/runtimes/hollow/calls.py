"""DockerCall answered in process for hollow nodes: the short container requests go
straight to the node's operations (ops.py) instead of an HTTP round trip to the
runtime's own socket in the same process.

Only requests this path answers exactly as the socket would are taken (the routes in
ops.ROUTES, a supported version prefix, a plain path); anything else returns None and
goes through the socket as before, so the rare and the malformed keep their one
implementation.
"""

from __future__ import annotations

import json
import logging
import urllib.parse

from multidict import MultiDict

from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.hollow import ops
from flock.agent.runtimes.hollow.api import HEADERS
from flock.agent.runtimes.hollow.store import HollowNode
from flock.docker_compat.api_version import version_refusal
from flock.protos import agent_pb2

log = logging.getLogger(__name__)

_PREFIX = "/containers/"
_HEADERS = [agent_pb2.Header(name=k, value=v) for k, v in HEADERS.items()]
_JSON_HEADERS = [*_HEADERS, agent_pb2.Header(name="Content-Type", value="application/json")]


def route(method: str, path: str) -> tuple[ops.Operation, str] | None:
    """(operation, container reference) for a request ops can answer; None otherwise."""
    if not path.startswith(_PREFIX) or "%" in path:
        return None
    rest = path[len(_PREFIX):]
    found = ops.ROUTES.get((method, rest))
    if found is not None:
        return found, ""
    ref, slash, verb = rest.partition("/")
    if not ref or "/" in verb:
        return None
    found = ops.ROUTES.get((method, "{id}/" + verb if slash else "{id}"))
    return (found, ref) if found is not None else None


def answer(node: HollowNode, req: agent_pb2.DockerRequest,
           body: bytes) -> agent_pb2.DockerCallReply | None:
    """The node's answer to `req` (already checked like the bridge checks it), or None
    when the socket must answer it."""
    if req.hijack:
        return None
    version = req.api_version.removeprefix("v")
    if req.api_version and (not version or version_refusal(version)):
        return None  # the socket's version error (or its 404 for a bare /v/), in its words
    found = route(req.method.upper(), req.path)
    if found is None:
        return None
    operation, ref = found
    query = MultiDict(urllib.parse.parse_qsl(req.query, keep_blank_values=True))
    try:
        status, payload = operation(node, ops.Ask(query, ref, body))
    except ApiError as exc:
        status, payload = exc.status, {"message": exc.message}
    except Exception as exc:  # noqa: BLE001 - as the socket's middleware: a 500 and a trace
        log.exception("hollow runtime: %s %s failed", req.method, req.path)
        status, payload = 500, {"message": f"exec runtime error: {exc}"}
    if payload is None:
        return agent_pb2.DockerCallReply(
            response=agent_pb2.DockerResponse(status=status, headers=_HEADERS))
    return agent_pb2.DockerCallReply(
        response=agent_pb2.DockerResponse(status=status, headers=_JSON_HEADERS),
        body=json.dumps(payload).encode())
