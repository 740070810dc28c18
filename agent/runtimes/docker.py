"""The `docker` runtime: the local Docker Engine answers for the node.

There is nothing to serve: the engine's own socket is the endpoint, so every field a
client relies on comes from the real engine.
"""

from __future__ import annotations

import asyncio
import socket

from agent.runtimes.base import RuntimeUnavailable

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def socket_path_of(docker_host: str) -> str:
    """The unix socket path of a DOCKER_HOST-style URL; ValueError for anything else,
    since the bridge speaks to unix sockets only."""
    if docker_host.startswith("unix://"):
        path = docker_host[len("unix://"):]
    elif docker_host.startswith("/"):
        path = docker_host
    else:
        raise ValueError(
            f"unsupported --docker-host {docker_host!r}: only unix:///path/to/docker.sock"
        )
    if not path:
        raise ValueError(f"unsupported --docker-host {docker_host!r}: empty socket path")
    return path


def _ping(path: str, timeout: float) -> str:
    """'' when the engine at `path` answers GET /_ping with 200, else why not."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            head = sock.recv(64)
    except OSError as exc:
        return exc.strerror or str(exc)
    if head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        return ""
    return f"unexpected answer to /_ping: {head[:40]!r}"


def engine_answers(docker_host: str = DEFAULT_DOCKER_HOST, timeout: float = 2.0) -> bool:
    """Whether a Docker Engine answers at `docker_host` (used to pick a runtime)."""
    try:
        path = socket_path_of(docker_host)
    except ValueError:
        return False
    return _ping(path, timeout) == ""


class DockerRuntime:
    """The local engine at `docker_host`."""

    name = "docker"

    def __init__(self, docker_host: str = DEFAULT_DOCKER_HOST) -> None:
        self.docker_host = docker_host or DEFAULT_DOCKER_HOST
        self._socket_path = socket_path_of(self.docker_host)

    @property
    def socket_path(self) -> str:
        return self._socket_path

    async def start(self) -> None:
        why = await asyncio.to_thread(_ping, self._socket_path, 5.0)
        if why:
            raise RuntimeUnavailable(
                f"Docker Engine at {self.docker_host} does not answer: {why}"
            )

    async def stop(self) -> None:
        """The engine is not ours: it and its containers keep running."""
