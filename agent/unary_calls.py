"""Short Docker API exchanges answered in one message (the DockerCall RPC).

The Docker stream (http_bridge) opens a new connection to the runtime for every request
and streams frames both ways; for a create or an inspect that is most of the cost. Here
the agent keeps connections to the runtime's endpoint open between requests
(kept_connections.py) and hands back the whole answer at once. Requests are checked
exactly as the bridge checks them.
"""

from __future__ import annotations

from collections.abc import Callable

from flock.agent.engine_endpoint import Endpoint, as_endpoint
from flock.agent.http_bridge import (
    BODYLESS_METHODS,
    BridgeError,
    ResponseHead,
    build_request_head,
    fill_response,
)
from flock.agent.kept_connections import AnswerTooLarge, KeptConnections
from flock.protos import agent_pb2

MAX_CALL_BODY = 16 << 20  # a larger answer belongs on the Docker stream

__all__ = ["AnswerTooLarge", "HeadReply", "MAX_CALL_BODY", "RuntimeCalls"]

# Takes a head-first call's first reply (the head alone) while the body is still awaited.
HeadReply = Callable[[agent_pb2.DockerCallReply], None]


class RuntimeCalls:
    """DockerCalls to one runtime endpoint, on connections kept between them."""

    def __init__(self, target: Endpoint | str, connections: int = 16,
                 max_body: int = MAX_CALL_BODY) -> None:
        self.endpoint = as_endpoint(target)
        self.max_body = max_body
        self.connections = KeptConnections(self.endpoint, idle=connections)

    async def close(self) -> None:
        await self.connections.close()

    async def call(self, req: agent_pb2.DockerRequest, body: bytes,
                   on_head: HeadReply | None = None) -> agent_pb2.DockerCallReply:
        """The whole answer; `on_head`, when given, has the answer's head first, as a
        reply of its own (head_only). Raises BridgeError (a malformed request),
        AnswerTooLarge, and OSError (or ssl's) when the runtime does not answer."""
        if req.hijack:
            raise BridgeError("a hijacked request needs the Docker stream")
        method = req.method.upper()
        framing = "none" if not body and method in BODYLESS_METHODS else "length"
        head = build_request_head(req, framing, len(body), keep_alive=True)
        shown = None if on_head is None else (
            lambda answer_head: on_head(_reply(answer_head, head_only=True)))
        answer = await self.connections.exchange(method, head, body, self.max_body, shown)
        return _reply(answer.head, body=answer.body)


def _reply(head: ResponseHead, body: bytes = b"", head_only: bool = False
           ) -> agent_pb2.DockerCallReply:
    reply = agent_pb2.DockerCallReply(body=body, head_only=head_only)
    fill_response(reply.response, head.status, head.headers)
    return reply
