"""Published ports as the Engine reads them (pure): `HostConfig.PortBindings`,
`PublishAllPorts` over `Config.ExposedPorts`, and the shapes `inspect` and `ps` show.

The texts of bad specs are go-connections' nat package (`invalid containerPort`,
`invalid hostPort`, `invalid proto`), which dockerd answers with a 400."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from flock.agent.runtimes.exec.errors import ApiError, bad_request

PROTOCOLS = ("tcp", "udp", "sctp")
SUPPORTED = ("tcp", "udp")


@dataclass(frozen=True)
class Binding:
    """One container port published on the host. host_port 0: any free port; a range
    (host_low < host_high): the first free one in it."""

    port: int
    proto: str
    host_ip: str
    host_low: int
    host_high: int

    @property
    def key(self) -> str:
        return f"{self.port}/{self.proto}"


def parse_key(key: object) -> tuple[int, str]:
    """`80`, `80/tcp`, `53/udp` -> (80, "tcp")."""
    if not isinstance(key, str):
        raise bad_request(f"invalid port specification: {key!r}")
    number, _, proto = key.partition("/")
    proto = proto.lower() or "tcp"
    if proto not in PROTOCOLS:
        raise bad_request(f"invalid proto: {proto}")
    if not number.isdigit() or not 0 < int(number) <= 65535:
        raise bad_request(f"invalid containerPort: {number}")
    return int(number), proto


def _host_range(text: str) -> tuple[int, int]:
    if not text:
        return 0, 0
    low, _, high = text.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise bad_request(f"invalid hostPort: {text}")
    first, last = int(low), int(high or low)
    if not 0 <= first <= last <= 65535:
        raise bad_request(f"invalid hostPort: {text}")
    return first, last


def _host_ip(value: object) -> str:
    text = value if isinstance(value, str) else ""
    if text and ":" in text and _is_ip(text):
        raise ApiError(501, f"the exec runtime does not support publishing on the IPv6 "
                            f"address {text}: its network is IPv4 only")
    if text and not _is_ipv4(text):
        raise bad_request(f"invalid IP address in port binding: {text} (the exec runtime "
                          f"publishes on IPv4 addresses)")
    return text or "0.0.0.0"


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def _is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) <= 255 for p in parts)


def exposed(config: dict) -> list[tuple[int, str]]:
    return [parse_key(key) for key in (config.get("ExposedPorts") or {})]


def bindings(config: dict, host_config: dict) -> list[Binding]:
    """Everything to publish: PortBindings, plus every exposed port not bound there when
    PublishAllPorts (`-P`) asks for it. Raises a 400 on a bad spec."""
    table = host_config.get("PortBindings") or {}
    if not isinstance(table, dict):
        raise bad_request("PortBindings must be a map of port to bindings")
    found: list[Binding] = []
    for key, entries in table.items():
        port, proto = parse_key(key)
        for entry in entries or []:
            if not isinstance(entry, dict):
                raise bad_request(f"invalid port binding for {key}: {entry!r}")
            low, high = _host_range(str(entry.get("HostPort") or ""))
            found.append(Binding(port, proto, _host_ip(entry.get("HostIp")), low, high))
    if host_config.get("PublishAllPorts"):
        bound = {(b.port, b.proto) for b in found}
        for port, proto in exposed(config):
            if (port, proto) not in bound:
                found.append(Binding(port, proto, "0.0.0.0", 0, 0))
    for binding in found:
        if binding.proto not in SUPPORTED:  # a valid request it cannot honour: 501
            raise ApiError(501, f"the exec runtime publishes tcp and udp ports, not "
                              f"{binding.proto} ({binding.key})")
    return found


def ports_map(config: dict, published: list[dict]) -> dict:
    """NetworkSettings.Ports: every exposed port (null when not published) and every
    published one with its host address."""
    shown: dict[str, list[dict] | None] = {}
    for port, proto in exposed(config):
        shown[f"{port}/{proto}"] = None
    for item in published:
        entry = {"HostIp": item["host_ip"], "HostPort": str(item["host_port"])}
        current = shown.get(item["key"]) or []
        shown[item["key"]] = [*current, entry]
    return shown


def ps_ports(config: dict, published: list[dict]) -> list[dict]:
    """`ps`'s Ports list: published ports with IP/PublicPort, exposed-only without."""
    listed = []
    done = set()
    for item in published:
        port, proto = parse_key(item["key"])
        listed.append({"IP": item["host_ip"], "PrivatePort": port,
                       "PublicPort": item["host_port"], "Type": proto})
        done.add((port, proto))
    for port, proto in exposed(config):
        if (port, proto) not in done:
            listed.append({"PrivatePort": port, "Type": proto})
    return listed


def merged_exposed(image_config: dict, config: dict) -> dict:
    """The image's EXPOSE plus the container's ExposedPorts (`--expose`, `-p`)."""
    own = config.get("ExposedPorts") or {}
    if not isinstance(own, dict):
        raise bad_request("ExposedPorts must be a map of port to {}")
    merged = {**(image_config.get("ExposedPorts") or {}), **own}
    for key in merged:
        parse_key(key)
    return merged
