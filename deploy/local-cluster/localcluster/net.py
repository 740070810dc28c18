"""The cluster's network: a bridge on this machine and three namespaces ("hosts"), each
joined to the bridge by a veth pair. The subnet is chosen so that it overlaps no address
or route of this machine; the same name gets the same subnet when it is free, so a
cluster that comes back keeps its DOCKER_HOST."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from localcluster import ClusterError, UsageError
from localcluster.layout import Layout

LOCK = Path("/run/flock-local-cluster.lock")
# Candidates: the /24s of 10.128.0.0/9, tried from a place that depends on the name.
POOL = ipaddress.IPv4Network("10.128.0.0/9")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise ClusterError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()}")
    return result


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network on an interface or in a route of this machine's own network
    namespace: what a new bridge subnet must not overlap."""
    out = []
    addrs = ip("-o", "-4", "addr", "show").stdout
    for line in addrs.splitlines():
        words = line.split()
        if "inet" in words:
            out.append(ipaddress.IPv4Interface(words[words.index("inet") + 1]).network)
    for line in ip("-4", "route", "show", "table", "all").stdout.splitlines():
        for word in line.split()[:2]:  # "10.0.0.0/24 dev ..." or "local 127.0.0.0/8 ..."
            if word == "default":
                break
            try:
                net = ipaddress.IPv4Network(word, strict=False)
            except ValueError:
                continue
            out.append(net)
            break
    return out


def check_subnet(text: str) -> ipaddress.IPv4Network:
    """A --subnet given by the user: valid, big enough, free."""
    try:
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        raise UsageError(f"invalid --subnet {text!r}: expected an IPv4 network such as "
                         "10.201.7.0/24") from None
    if net.prefixlen > 29:
        raise UsageError(f"--subnet {text} is too small: it needs 4 addresses "
                         "(the bridge and three hosts); use a /29 or larger, e.g. a /24")
    for used in used_networks():
        if net.overlaps(used):
            raise UsageError(f"--subnet {net} overlaps {used}, already used on this "
                             "machine (`ip -4 addr`, `ip -4 route`): pick another one or "
                             "leave --subnet out to have one chosen")
    return net


def pick_subnet(name: str) -> ipaddress.IPv4Network:
    """A free /24 of POOL, starting from a place derived from the name."""
    used = used_networks()
    candidates = list(POOL.subnets(new_prefix=24))
    start = int(hashlib.sha1(name.encode()).hexdigest(), 16) % len(candidates)
    for offset in range(len(candidates)):
        net = candidates[(start + offset) % len(candidates)]
        if not any(net.overlaps(other) for other in used):
            return net
    raise ClusterError(f"no free /24 in {POOL} on this machine: pass --subnet")


@contextlib.contextmanager
def names_lock() -> Iterator[None]:
    """Held (machine-wide) while a cluster's names and subnet are checked and taken."""
    with open(LOCK, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def link_exists(name: str) -> bool:
    return ip("link", "show", name, check=False).returncode == 0


def namespaces() -> set[str]:
    out = ip("netns", "list", check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def leftovers(layout: Layout) -> list[str]:
    """What of this cluster's network exists now (names, for messages)."""
    present = namespaces()
    found = [layout.netns(i) for i in layout.indexes if layout.netns(i) in present]
    found += [n for n in [layout.bridge, *map(layout.veth, layout.indexes)] if link_exists(n)]
    return found


def create(layout: Layout) -> None:
    """Bridge with the first address, then each namespace with eth0 (+ loopback and a
    default route through the bridge)."""
    prefix = layout.prefixlen
    ip("link", "add", layout.bridge, "type", "bridge")
    ip("addr", "add", f"{layout.bridge_ip}/{prefix}", "dev", layout.bridge)
    ip("link", "set", layout.bridge, "up")
    for index in layout.indexes:
        ns, veth = layout.netns(index), layout.veth(index)
        ip("netns", "add", ns)
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        ip("link", "set", veth, "master", layout.bridge, "up")
        ip("-n", ns, "addr", "add", f"{layout.host_ip(index)}/{prefix}", "dev", "eth0")
        ip("-n", ns, "link", "set", "lo", "up")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "route", "add", "default", "via", layout.bridge_ip)


def remove(layout: Layout) -> list[str]:
    """Delete the namespaces (their eth0 goes with them, and so does the peer), any veth
    left on this side, and the bridge. Returns what was removed; absent parts are fine.
    Call after the processes in the namespaces are gone, or a namespace outlives its name."""
    removed = []
    present = namespaces()
    for index in layout.indexes:
        ns = layout.netns(index)
        if ns in present:
            ip("netns", "delete", ns)
            removed.append(f"netns {ns}")
    # A namespace's veth pair goes when the kernel gets to it: a delete may find it gone.
    for name in [*map(layout.veth, layout.indexes), layout.bridge]:
        if link_exists(name):
            ip("link", "delete", name, check=False)
            removed.append(name)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = leftovers(layout)
        if not left:
            return removed
        time.sleep(0.2)
    raise ClusterError(f"still there after deleting them: {', '.join(left)}; "
                       "see `ip link` and `ip netns`, then run down again")
