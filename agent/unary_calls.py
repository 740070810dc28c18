"""Short Docker API exchanges answered in one message (the DockerCall RPC).

The Docker stream (http_bridge) opens a new connection to the runtime for every request
and streams frames both ways; for a create or an inspect that is most of the cost. Here
the agent keeps a few keep-alive connections to the runtime's endpoint and hands back
the whole answer at once. Requests are checked exactly as the bridge checks them.
"""

from __future__ import annotations

import aiohttp
from yarl import URL

from flock.agent.engine_endpoint import Endpoint, as_endpoint
from flock.agent.http_bridge import BridgeError, build_request_head, request_target
from flock.docker_compat.hop_headers import HOP_BY_HOP, HOP_REQUEST
from flock.protos import agent_pb2

MAX_CALL_BODY = 16 << 20  # a larger answer belongs on the Docker stream


class AnswerTooLarge(Exception):
    """The runtime's answer does not fit one message; use the Docker stream."""


class RuntimeCalls:
    """A keep-alive HTTP client to one runtime endpoint, made on first use."""

    def __init__(self, target: Endpoint | str, connections: int = 16,
                 max_body: int = MAX_CALL_BODY) -> None:
        self.endpoint = as_endpoint(target)
        self.connections = connections
        self.max_body = max_body
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=self.endpoint.connector(limit=self.connections),
                timeout=aiohttp.ClientTimeout(total=None), auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, req: agent_pb2.DockerRequest,
                   body: bytes) -> agent_pb2.DockerCallReply:
        """Raises BridgeError (a malformed request), AnswerTooLarge, and aiohttp's or the
        OS's errors when the runtime does not answer."""
        if req.hijack:
            raise BridgeError("a hijacked request needs the Docker stream")
        build_request_head(req, "length", len(body))  # the bridge's checks, same messages
        # encoded=True: the target goes exactly as the bridge would write it (yarl
        # would otherwise re-quote it its own way).
        url = URL(f"{self.endpoint.base_url}{request_target(req)}", encoded=True)
        headers = {h.name: h.value for h in req.headers if h.name.lower() not in HOP_REQUEST}
        async with self._client().request(
                req.method.upper(), url,
                headers=headers, data=body if body or req.method.upper() not in
                ("GET", "HEAD", "DELETE") else None,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type")) as resp:
            if (resp.content_length or 0) > self.max_body:
                raise AnswerTooLarge(f"answer of {resp.content_length} bytes")
            chunks, size = [], 0
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > self.max_body:
                    raise AnswerTooLarge(f"answer over {self.max_body} bytes")
                chunks.append(chunk)
            data = b"".join(chunks)
            answer = [agent_pb2.Header(name=k, value=v) for k, v in resp.headers.items()
                      if k.lower() not in HOP_BY_HOP]
            return agent_pb2.DockerCallReply(
                response=agent_pb2.DockerResponse(status=resp.status, headers=answer),
                body=data)
