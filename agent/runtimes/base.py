"""What the agent needs of a runtime: a Docker Engine API endpoint (a unix socket, or
for the docker runtime any engine address, TLS included).

Keeping the interface this small means one piece of proxy code (agent.http_bridge)
serves every runtime, hijacked streams included.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from flock.agent.engine_endpoint import Endpoint


class RuntimeUnavailable(Exception):
    """A runtime could not be started; the message says which and why."""


@runtime_checkable
class Runtime(Protocol):
    name: str  # "docker" | "exec" | "hollow"

    async def start(self) -> None:
        """Make the endpoint answer (or raise with a message that says why it cannot)."""
        ...

    async def stop(self) -> None:
        """Stop serving; containers keep running."""
        ...

    @property
    def endpoint(self) -> Endpoint:
        """Where the Docker Engine API answers."""
        ...
