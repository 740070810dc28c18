"""Discovery: where the manager learns which agents make up the cluster.

Backends are chosen by the URL's scheme, as in classic Swarm: `nodes://h:p,h:p` (or a
bare `h:p,h:p` list) for a static list, `file:///path` for a file of addresses. Both
accept ranges such as `10.0.0.[10:200]:2375`. `etcd://h:p,h:p/prefix` keeps agents
under TTL leases and can be watched; `token://<id>` asks Flock's token service. Agents
call `register` every heartbeat; the manager calls `fetch` every heartbeat (and follows
`watch()` where a backend has one) and diffs the answer against what it has.
"""

from __future__ import annotations

from flock.discovery.backend import Backend, DiscoveryError
from flock.discovery.file import FileBackend
from flock.discovery.nodes import NodesBackend

__all__ = ["Backend", "DiscoveryError", "FileBackend", "NodesBackend", "open_backend"]


def open_backend(url: str, discovery_url: str | None = None) -> Backend:
    """The backend for a discovery URL; raises DiscoveryError when it does not parse.
    `discovery_url` is the token service for token:// (default $FLOCK_DISCOVERY_URL)."""
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
    if scheme == "etcd":
        from flock.discovery.etcd import EtcdBackend  # grpc stubs: loaded only when used

        return EtcdBackend.from_url(rest)
    if scheme == "token":
        from flock.discovery.token import TokenBackend

        return TokenBackend(rest.strip("/"), discovery_url)
    raise DiscoveryError(
        f"unsupported discovery URL {url!r}: use nodes://HOST:PORT,..., "
        "a bare HOST:PORT,... list, file:///PATH, etcd://HOST:PORT/PREFIX or token://TOKEN"
    )
