"""Addresses on the runtime's bridge (pure): the gateway is the subnet's first host,
containers get the lowest free one after it. What is taken is read from the containers'
records, so the state kept on disk is the only IPAM state and a removal frees its address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from flock.agent.runtimes.exec.errors import ApiError, bad_request


def gateway(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return next(subnet.hosts())


def allocate(subnet: ipaddress.IPv4Network, taken: Iterable[str]) -> ipaddress.IPv4Address:
    """The lowest free host address; a 500 when the subnet is full, as dockerd says."""
    used = {ipaddress.ip_address(a) for a in taken} | {gateway(subnet)}
    for address in subnet.hosts():
        if address not in used:
            return address
    raise ApiError(500, f"no available IPv4 addresses on this network's address pools: "
                        f"bridge ({subnet})")


def mac_for(address: ipaddress.IPv4Address) -> str:
    """The Engine's rule: 02:42 followed by the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


def hosts_file(own: tuple[str, str, list[str]], others: Iterable[tuple[str, list[str]]],
               extra: Iterable[tuple[str, str]] = ()) -> str:
    """/etc/hosts of one container: localhost, `--add-host` entries, itself, then every
    other running container of the bridge by address and names (how names resolve on
    the node)."""
    address, hostname, names = own
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
             "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix",
             "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
    lines += [f"{ip}\t{name}" for name, ip in extra]
    if address:
        lines.append("\t".join([address, *dict.fromkeys([hostname, *names])]))
    for other_address, other_names in sorted(others):
        lines.append("\t".join([other_address, *other_names]))
    return "\n".join(lines) + "\n"


def extra_hosts(entries: object) -> list[tuple[str, str]]:
    """HostConfig.ExtraHosts (`--add-host name:address`) as (name, address); a 400 for
    an entry that is not one."""
    found = []
    for entry in entries or []:
        name, sep, address = str(entry).partition(":")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            sep = ""
        if not sep or not name:
            raise bad_request(f"invalid ExtraHosts entry {entry!r}: expected name:address")
        found.append((name, address))
    return found


def resolv_conf(host_text: str, servers: list[str], search: list[str],
                options: list[str]) -> str:
    """The container's resolv.conf: the host's, minus loopback servers a container in its
    own namespace cannot reach (the Engine's public fallback when none is left), or the
    `--dns`, `--dns-search`, `--dns-option` given."""
    kept = [line for line in host_text.splitlines() if not _loopback_server(line)]
    if servers:
        kept = [line for line in kept if not line.startswith("nameserver")]
        kept += [f"nameserver {s}" for s in servers]
    if search:
        kept = [line for line in kept if not line.startswith(("search", "domain"))]
        kept.append("search " + " ".join(search))
    if options:
        kept = [line for line in kept if not line.startswith("options")]
        kept.append("options " + " ".join(options))
    if not any(line.startswith("nameserver") for line in kept):
        kept += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(kept) + "\n"


def _loopback_server(line: str) -> bool:
    words = line.split()
    return len(words) > 1 and words[0] == "nameserver" and words[1].startswith(("127.", "::1"))
