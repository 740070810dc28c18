"""`nodes://h1:p,h2:p`: a fixed list of agents given on the command line."""

from __future__ import annotations

from flock.discovery.addresses import expand_all
from flock.discovery.backend import Backend, DiscoveryError


class NodesBackend(Backend):
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    @classmethod
    def from_list(cls, text: str) -> NodesBackend:
        entries = [part for part in text.split(",") if part.strip()]
        if not entries:
            raise DiscoveryError("nodes:// needs at least one HOST:PORT")
        return cls(expand_all(entries))

    async def fetch(self) -> list[str]:
        return list(self.addresses)
