"""The interface every discovery backend offers."""

from __future__ import annotations

import abc


class DiscoveryError(ValueError):
    """A discovery URL or entry that does not parse, or a backend that cannot answer."""


class Backend(abc.ABC):
    """Where agent addresses live."""

    @abc.abstractmethod
    async def fetch(self) -> list[str]:
        """The agent addresses ("host:port") registered now."""

    async def register(self, addr: str, ttl: float) -> None:  # noqa: B027 - static default
        """Announce `addr` for `ttl` seconds. Static backends have nothing to do."""
