"""`etcd://h1:p,h2:p/prefix`: agents register under leases, the manager watches.

An agent's key is `<prefix>/<addr>` holding the address, attached to a lease of the
agent's TTL that every heartbeat renews; an agent that dies disappears when its lease
runs out, with no one having to clean up. Keys whose last part starts with `_` are
Flock's own (the manager's `_leader`) and are skipped; any other key that does not hold
a HOST:PORT is garbage someone else wrote and is ignored with one warning.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from flock.discovery.addresses import check
from flock.discovery.backend import Backend, DiscoveryError
from flock.discovery.etcd_client import EtcdClient, EtcdUnavailable

log = logging.getLogger("flock.discovery.etcd")

DEFAULT_PREFIX = "/flock"


def parse_etcd_url(rest: str) -> tuple[list[str], str]:
    """(endpoints, prefix) from what follows `etcd://`; DiscoveryError when it is bad."""
    hosts, _, path = rest.partition("/")
    endpoints = [h.strip() for h in hosts.split(",") if h.strip()]
    if not endpoints:
        raise DiscoveryError("etcd:// needs at least one HOST:PORT, e.g. etcd://10.0.0.1:2379/flock")
    for endpoint in endpoints:
        try:
            check(endpoint)
        except DiscoveryError:
            raise DiscoveryError(
                f"invalid etcd endpoint {endpoint!r}: expected HOST:PORT") from None
    prefix = "/" + path.strip("/") if path.strip("/") else DEFAULT_PREFIX
    return endpoints, prefix


class EtcdBackend(Backend):
    """Registration under a lease, listing and watching of one etcd prefix."""

    def __init__(self, endpoints: list[str], prefix: str = DEFAULT_PREFIX,
                 timeout: float = 3.0) -> None:
        self.client = EtcdClient(endpoints, timeout)
        self.prefix = prefix.rstrip("/") or DEFAULT_PREFIX
        self._lease = 0
        self._lease_ttl = 0.0
        self._warned: set[tuple[str, bytes]] = set()

    @classmethod
    def from_url(cls, rest: str) -> EtcdBackend:
        return cls(*parse_etcd_url(rest))

    @property
    def url(self) -> str:
        return f"etcd://{self.client.names}{self.prefix}"

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    async def close(self) -> None:
        await self.client.close()

    # ------------------------------------------------------------- agents
    async def register(self, addr: str, ttl: float) -> None:
        """Renew our lease; when it is gone (first call, etcd lost it, TTL changed) take
        a new one and write the key again. The key is rewritten if someone deleted it."""
        key = self.key(addr)
        if self._lease and self._lease_ttl == ttl:
            left = await self.client.keepalive(self._lease)
            if left > 0:
                if await self.client.get(key) is None:
                    await self.client.put(key, addr.encode(), lease=self._lease)
                return
            log.info("etcd lease for %s had expired; registering again", addr)
        self._lease = await self.client.grant(ttl)
        self._lease_ttl = ttl
        await self.client.put(key, addr.encode(), lease=self._lease)

    async def deregister(self, addr: str) -> None:
        """Leave at once (a clean agent stop) instead of waiting for the TTL."""
        if self._lease:
            lease, self._lease = self._lease, 0
            await self.client.revoke(lease)
        else:
            await self.client.delete(self.key(addr))

    # ------------------------------------------------------------- manager
    async def fetch(self) -> list[str]:
        pairs, _ = await self.client.get_prefix(self.prefix + "/")
        return self._addresses(dict(pairs))

    async def watch(self) -> AsyncIterator[list[str]]:
        """The address list now, then again after every change under the prefix.
        Ends with EtcdUnavailable when etcd goes away; the caller starts it again."""
        pairs, revision = await self.client.get_prefix(self.prefix + "/")
        current = dict(pairs)
        yield self._addresses(current)
        async for event in self.client.watch_prefix(self.prefix + "/", revision + 1):
            if event.kind == "delete":
                current.pop(event.key, None)
            else:
                current[event.key] = event.value
            yield self._addresses(current)

    def _addresses(self, pairs: dict[str, bytes]) -> list[str]:
        found: dict[str, None] = {}
        for key, value in sorted(pairs.items()):
            name = key[len(self.prefix) + 1:]
            # `_leader`, `_cron/...`: the managers' own keys (election, cron jobs)
            if any(part.startswith("_") for part in name.split("/")):
                continue
            addr = self._address(key, value)
            if addr:
                found.setdefault(addr, None)
        return list(found)

    def _address(self, key: str, value: bytes) -> str:
        try:
            return check(value.decode().strip())
        except (UnicodeDecodeError, DiscoveryError):
            if (key, value) not in self._warned:
                self._warned.add((key, value))
                log.warning("ignoring etcd key %s: its value %r is not HOST:PORT",
                            key, value[:80])
            return ""


__all__ = ["EtcdBackend", "EtcdUnavailable", "parse_etcd_url"]
