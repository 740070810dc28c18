"""Discovery: where the manager learns which agents make up the cluster.

Backends are chosen by the URL's scheme, as in classic Swarm: `nodes://h:p,h:p` (or a
bare `h:p,h:p` list) for a static list, `file:///path` for a file of addresses. Both
accept ranges such as `10.0.0.[10:200]:2375`. Agents call `register` every heartbeat;
the manager calls `fetch` every heartbeat and diffs the answer against what it has.
"""

from __future__ import annotations

from discovery.backend import Backend, DiscoveryError
from discovery.file import FileBackend
from discovery.nodes import NodesBackend

__all__ = ["Backend", "DiscoveryError", "FileBackend", "NodesBackend", "open_backend"]


def open_backend(url: str) -> Backend:
    """The backend for a discovery URL; raises DiscoveryError when it does not parse."""
    url = (url or "").strip()
    if not url:
        raise DiscoveryError("no discovery URL given: use nodes://HOST:PORT,... or file:///PATH")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return NodesBackend.from_list(url)
    if scheme == "nodes":
        return NodesBackend.from_list(rest)
    if scheme == "file":
        return FileBackend(rest)
    raise DiscoveryError(
        f"unsupported discovery URL {url!r}: use nodes://HOST:PORT,..., "
        "a bare HOST:PORT,... list, or file:///PATH"
    )
