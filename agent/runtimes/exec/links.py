"""The host side of the exec runtime's network, through iproute2: the bridge, one named
network namespace per container (`ip netns add`, so it exists before the container's
process and the shim only joins it), the veth pair between them, and the free subnets
of this machine. Every call is a short `ip` command; errors come back as OSError."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import subprocess
from collections.abc import Iterator

NETNS_DIR = "/run/netns"
POOL = ipaddress.ip_network("10.210.0.0/16")
LOCK = "/run/flock-exec-network.lock"


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Runtimes on one machine pick subnets and make bridges one at a time."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network on an interface or in a route of this machine."""
    nets = []
    text = ip("-o", "-4", "addr", check=False) + ip("-4", "route", "show", "table", "all",
                                                    check=False)
    for word in text.split():
        if "/" in word or word.count(".") == 3:
            with contextlib.suppress(ValueError):
                net = ipaddress.ip_network(word, strict=False)
                if isinstance(net, ipaddress.IPv4Network) and net.prefixlen > 0:
                    nets.append(net)
    return nets


def free_subnet(prefix: int = 24) -> ipaddress.IPv4Network:
    """The first /24 of POOL that nothing here uses (call under machine_lock)."""
    used = used_networks()
    for net in POOL.subnets(new_prefix=prefix):
        if not any(net.overlaps(u) for u in used):
            return net
    raise OSError(f"no free /{prefix} left in {POOL} for the exec runtime's bridge")


def bridge_address(name: str) -> ipaddress.IPv4Interface | None:
    for line in ip("-o", "-4", "addr", "show", "dev", name, check=False).splitlines():
        words = line.split()
        if "inet" in words:
            return ipaddress.ip_interface(words[words.index("inet") + 1])
    return None


def ensure_bridge(name: str, gateway: ipaddress.IPv4Interface) -> None:
    """The bridge up with the gateway address; an existing one is reused as it is when
    its address matches, refused when it does not (someone else's bridge)."""
    if link_exists(name):
        current = bridge_address(name)
        if current is not None and current != gateway:
            raise OSError(f"bridge {name} exists with address {current}, not {gateway}: "
                          f"choose another --exec-bridge or --exec-subnet")
    else:
        ip("link", "add", name, "type", "bridge")
    if bridge_address(name) is None:
        ip("addr", "add", str(gateway), "dev", name)
    ip("link", "set", name, "up")
    with contextlib.suppress(OSError):
        with open("/proc/sys/net/ipv4/ip_forward", "w") as fh:
            fh.write("1")


def delete_link(name: str) -> None:
    if link_exists(name):
        ip("link", "del", name, check=False)


def bridge_ports(name: str) -> list[str]:
    try:
        return os.listdir(f"/sys/class/net/{name}/brif")
    except OSError:
        return []


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def add_netns(name: str) -> None:
    if not os.path.exists(netns_path(name)):
        ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def delete_netns(name: str) -> None:
    if os.path.exists(netns_path(name)):
        ip("netns", "del", name, check=False)


def connect(netns: str, host_end: str, bridge: str, address: ipaddress.IPv4Interface,
            gateway: ipaddress.IPv4Address, mac: str) -> None:
    """A veth pair: host_end on the bridge, eth0 in the namespace with the address, the
    MAC and a default route through the bridge."""
    peer = f"{host_end}p"
    delete_link(host_end)
    ip("link", "add", host_end, "type", "veth", "peer", "name", peer)
    try:
        ip("link", "set", peer, "netns", netns)
        ip("-n", netns, "link", "set", peer, "name", "eth0")
        ip("-n", netns, "link", "set", "eth0", "address", mac)
        ip("-n", netns, "addr", "add", str(address), "dev", "eth0")
        ip("-n", netns, "link", "set", "eth0", "up")
        ip("-n", netns, "route", "add", "default", "via", str(gateway))
        ip("link", "set", host_end, "master", bridge, "up")
    except OSError:
        delete_link(host_end)
        raise
