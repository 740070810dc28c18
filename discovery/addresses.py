"""Parsing of agent addresses, with classic Swarm's ranges (`10.0.0.[10:200]:2375`)."""

from __future__ import annotations

import re

from flock.discovery.backend import DiscoveryError

_RANGE = re.compile(r"\[(\d+):(\d+)\]")
# Expanding more than this is almost certainly a typo, and would eat memory.
MAX_EXPANSION = 100_000


def expand(entry: str) -> list[str]:
    """One address, or the addresses a range in it stands for, each checked."""
    entry = entry.strip()
    match = _RANGE.search(entry)
    if match is None:
        return [check(entry)]
    if _RANGE.search(entry, match.end()):
        raise DiscoveryError(f"invalid address {entry!r}: only one [a:b] range is allowed")
    low, high = int(match.group(1)), int(match.group(2))
    if low > high:
        raise DiscoveryError(f"invalid range in {entry!r}: {low} is greater than {high}")
    if high - low >= MAX_EXPANSION:
        raise DiscoveryError(f"range in {entry!r} expands to more than {MAX_EXPANSION} addresses")
    head, tail = entry[: match.start()], entry[match.end():]
    return [check(f"{head}{n}{tail}") for n in range(low, high + 1)]


def check(addr: str) -> str:
    """`addr` if it is host:port with a valid port, else DiscoveryError."""
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DiscoveryError(f"invalid address {addr!r}: expected HOST:PORT")
    if any(c.isspace() for c in host) or "/" in host:
        raise DiscoveryError(f"invalid host in {addr!r}")
    return addr


def expand_all(entries: list[str]) -> list[str]:
    """Expand every entry, keeping order and dropping repeats."""
    seen: dict[str, None] = {}
    for entry in entries:
        for addr in expand(entry):
            seen.setdefault(addr, None)
    return list(seen)
