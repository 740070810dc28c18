"""The `docker` runtime: a Docker Engine answers for the node.

There is nothing to serve: the engine's own endpoint is the runtime's, so every field a
client relies on comes from the real engine. The engine is the machine's unix socket,
or any tcp:// address (TLS with client certs, as Docker Machine's engines listen).
"""

from __future__ import annotations

import asyncio
import ssl

from flock.agent.engine_endpoint import DEFAULT_DOCKER_HOST, Endpoint, parse_docker_host
from flock.agent.runtimes.base import RuntimeUnavailable

__all__ = ["DEFAULT_DOCKER_HOST", "DockerRuntime", "engine_answers"]


def engine_answers(docker_host: str = DEFAULT_DOCKER_HOST, timeout: float = 2.0,
                   tls: ssl.SSLContext | None = None) -> bool:
    """Whether a Docker Engine answers at `docker_host` (used to pick a runtime)."""
    try:
        endpoint = parse_docker_host(docker_host, tls)
    except ValueError:
        return False
    return endpoint.why_silent(timeout) == ""


class DockerRuntime:
    """The engine at `docker_host`; `tls` is the client context for a tcp:// engine
    that speaks TLS (certs.engine_client_context). ValueError for an address that
    cannot work."""

    name = "docker"

    def __init__(self, docker_host: str = DEFAULT_DOCKER_HOST,
                 tls: ssl.SSLContext | None = None) -> None:
        self.docker_host = docker_host or DEFAULT_DOCKER_HOST
        self._endpoint = parse_docker_host(self.docker_host, tls)

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def socket_path(self) -> str:
        """The unix socket, or '' for a tcp:// engine."""
        return self._endpoint.path

    async def start(self) -> None:
        why = await asyncio.to_thread(self._endpoint.why_silent, 5.0)
        if why:
            raise RuntimeUnavailable(f"Docker Engine at {self._endpoint} does not answer: {why}")

    async def stop(self) -> None:
        """The engine is not ours: it and its containers keep running."""
