"""Container networking of the exec runtime.

`bridge` (the default): each container gets a named network namespace made before its
process starts (the shim joins it), a veth pair to the runtime's bridge, an address from
the bridge's subnet, a default route through the bridge and outbound NAT (nat.py).
Published ports are served by a userspace proxy (proxy.py). Containers find each other
by name through an /etc/hosts written per container and rewritten in place whenever a
container of the bridge starts or stops. `host`: the host's stack. `none`: only lo.

The endpoint of a running container (address, MAC, ports, namespace) is kept in its
record (`extra["network"]`), so the disk stays the only state: addresses in use are those
of the records, and a restarted runtime opens the proxies again and removes what belongs
to containers that stopped meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import pathlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from flock.agent.runtimes.exec import endpoints, ipam, links, nat, ports, proxy
from flock.agent.runtimes.exec.errors import ApiError, bad_request, not_found
from flock.agent.runtimes.exec.store import ContainerRecord, read_json, write_json_atomic

log = logging.getLogger(__name__)
BRIDGE_MODES = ("", "default", "bridge")
ETC_FILES = ("hosts", "hostname", "resolv.conf")


@dataclass
class NetworkConfig:
    """`bridge` "" names it after the engine ID (flock + 8 hex: two runtimes on one
    machine never share one by accident); `subnet` "" takes a free /24 of 10.210.0.0/16,
    kept in the state folder. enabled False: every container uses the host's stack."""

    bridge: str = ""
    subnet: str = ""
    enabled: bool = True

    @classmethod
    def from_options(cls, bridge: str, subnet: str) -> NetworkConfig:
        """The agent's --exec-bridge/--exec-subnet; bridge `none`: the host's network."""
        if bridge == "none":
            return cls(enabled=False)
        return cls(bridge, subnet)


def mode_of(host_config: dict) -> str:
    mode = host_config.get("NetworkMode") or "default"
    return "bridge" if mode in BRIDGE_MODES else mode


class Network:
    def __init__(self, state_dir: pathlib.Path, config: NetworkConfig, engine_id: str,
                 records: Callable[[], dict[str, ContainerRecord]],
                 running: Callable[[ContainerRecord], bool],
                 save: Callable[[ContainerRecord], None]) -> None:
        self.state_file = state_dir / "network.json"
        self.config = config
        self.enabled = config.enabled
        self.bridge = config.bridge or f"flock{engine_id.replace('-', '')[:8].lower()}"
        self.subnet: ipaddress.IPv4Network | None = None
        self.network_id = hashlib.sha256(f"{engine_id}/{self.bridge}".encode()).hexdigest()
        self.note = ""
        self._records = records
        self._running = running
        self._save = save
        self.proxies: dict[str, list] = {}
        self.releasing: dict[str, asyncio.Task] = {}

    # --- the bridge --------------------------------------------------------------------
    async def setup(self) -> None:
        """The bridge, its rules, then reconcile with the containers on disk."""
        if not self.enabled:
            self.note = "containers use the host's network (no isolation here)"
            return
        try:
            await asyncio.to_thread(self._make_bridge)
        except OSError as exc:
            log.warning("exec runtime: no bridge network: %s", exc)
            self.enabled = False
            self.note = f"containers use the host's network: {exc}"
            return
        await self._reconcile()

    def _make_bridge(self) -> None:
        saved = read_json(self.state_file) or {}
        with links.machine_lock():
            subnet = self.config.subnet or (saved.get("subnet")
                                             if saved.get("bridge") == self.bridge else "")
            if subnet and not self.config.subnet and not links.link_exists(self.bridge) and \
                    any(ipaddress.ip_network(subnet).overlaps(u)
                        for u in links.used_networks()):
                subnet = ""  # taken by something else while the bridge was gone
            net = ipaddress.ip_network(subnet) if subnet else links.free_subnet()
            if not isinstance(net, ipaddress.IPv4Network) or net.num_addresses < 4:
                raise OSError(f"the exec subnet must be IPv4 and hold a few addresses: {net}")
            gateway = ipaddress.ip_interface(f"{ipam.gateway(net)}/{net.prefixlen}")
            links.ensure_bridge(self.bridge, gateway)
        self.subnet = net
        write_json_atomic(self.state_file, {"bridge": self.bridge, "subnet": str(net)})
        self.note = nat.install(self.bridge, str(net))
        if self.note:
            log.warning("exec runtime: %s", self.note)

    async def close(self) -> None:
        """Stop the proxies; the bridge and its rules go too once no container uses it."""
        for cid in list(self.proxies):
            await self._close_proxies(cid)
        for task in list(self.releasing.values()):
            with contextlib.suppress(Exception):
                await task
        if not self.enabled:
            return
        if not any(self._endpoint(r) for r in self._records().values()
                   if self._running(r)):
            await asyncio.to_thread(self._remove_bridge)

    def _remove_bridge(self) -> None:
        nat.remove(self.bridge)
        with links.machine_lock():
            links.delete_link(self.bridge)

    async def _reconcile(self) -> None:
        """After a restart: proxies again for running containers, endpoints of stopped
        ones removed, veths on the bridge that belong to no running container deleted."""
        wanted = set()
        for record in list(self._records().values()):
            endpoint = self._endpoint(record)
            if not endpoint:
                continue
            if self._running(record):
                wanted.add(endpoint["veth"])
                with contextlib.suppress(ApiError):
                    await self._open_proxies(record, endpoint, endpoint["ports"])
            else:
                await self._release(record)
        for name in links.bridge_ports(self.bridge):
            if name not in wanted:
                await asyncio.to_thread(links.delete_link, name)

    # --- create ----------------------------------------------------------------------
    def check(self, config: dict, host_config: dict) -> list[str]:
        """At create: the Engine's answers for bad port specs; returns warnings. (An
        unknown network passes here and fails at start, as with dockerd.)"""
        mode = mode_of(host_config)
        if mode.startswith("container:"):
            raise ApiError(501, "the exec runtime does not support --network container:NAME")
        _refuse_unsupported(config, host_config, mode)
        ipam.extra_hosts(host_config.get("ExtraHosts"))
        if not isinstance(config.get("ExposedPorts") or {}, dict):
            raise bad_request("ExposedPorts must be a map of port to {}")
        ports.exposed(config)
        published = ports.bindings(config, host_config)
        if not published:
            return []
        if mode == "none":
            raise bad_request("conflicting options: port publishing and the container "
                              "type network mode")
        if mode == "host":
            return ["Published ports are discarded when using host network mode"]
        if not self.enabled:
            raise ApiError(501, f"the exec runtime cannot publish ports here: {self.note}")
        return []

    # --- start and stop ---------------------------------------------------------------
    async def attach(self, record: ContainerRecord) -> dict:
        """Before the process starts: the endpoint and published ports. Returns what the
        shim needs (the namespace to join, files to mount over /etc). Undone on error."""
        pending = self.releasing.pop(record.id, None)
        if pending is not None:
            await pending
        mode = mode_of(record.host_config)
        if mode not in ("bridge", "host", "none"):
            raise not_found(f"network {mode} not found")
        if mode == "host" or not self.enabled:
            return {}
        netns = f"flk-{record.id[:12]}"
        folder = pathlib.Path(self._folder(record))
        try:
            if mode == "none":
                await asyncio.to_thread(links.add_netns, netns)
                self._set_endpoint(record, {"mode": "none", "netns": netns, "veth": "",
                                            "ip": "", "mac": "", "ports": []})
                await asyncio.to_thread(self._write_etc, record, folder)
            else:
                await self._attach_bridge(record, netns, folder)
        except BaseException:
            await self._release(record)
            raise
        return {"netns": links.netns_path(netns),
                "etc_files": {f"/etc/{name}": str(folder / name) for name in ETC_FILES}}

    async def started(self, record: ContainerRecord) -> None:
        """The process holds its namespace now: drop the name, so that the namespace and
        its veth vanish with the container's last process, whoever ends it."""
        endpoint = self._endpoint(record)
        if endpoint and endpoint.get("netns"):
            await asyncio.to_thread(links.delete_netns, endpoint["netns"])

    async def _attach_bridge(self, record: ContainerRecord, netns: str,
                             folder: pathlib.Path) -> None:
        assert self.subnet is not None
        if not links.link_exists(self.bridge):  # deleted behind the runtime's back
            await asyncio.to_thread(self._make_bridge)
        wanted = ports.bindings(record.config, record.host_config)
        taken = [e["ip"] for r in self._records().values() if r.id != record.id
                 and (e := self._endpoint(r)) and e.get("ip")]
        address = ipam.allocate(self.subnet, taken)
        endpoint = {"mode": "bridge", "netns": netns, "veth": f"vfl{record.id[:10]}",
                    "ip": str(address), "mac": ipam.mac_for(address), "ports": [],
                    "endpoint_id": secrets.token_hex(32), "sandbox_id": secrets.token_hex(32)}
        self._set_endpoint(record, endpoint)
        await asyncio.to_thread(links.add_netns, netns)
        await asyncio.to_thread(
            links.connect, netns, endpoint["veth"], self.bridge,
            ipaddress.ip_interface(f"{address}/{self.subnet.prefixlen}"),
            ipam.gateway(self.subnet), endpoint["mac"])
        await self._open_proxies(record, endpoint, wanted)
        self._set_endpoint(record, endpoint)
        await asyncio.to_thread(self._write_etc, record, folder)
        await asyncio.to_thread(self._refresh_hosts)

    async def _open_proxies(self, record: ContainerRecord, endpoint: dict,
                            wanted: list) -> None:
        """Bind every published port (wanted: Bindings, or the ports map of a running
        container being restored); the Engine's error when one is taken."""
        opened = []
        self.proxies[record.id] = []
        for item in wanted:
            binding = item if isinstance(item, ports.Binding) else _binding_of(item)
            try:
                relay, host_port = await self._bind(record, binding, endpoint["ip"])
            except OSError as exc:
                await self._close_proxies(record.id)
                raise ApiError(500, f"driver failed programming external connectivity on "
                                    f"endpoint {record.name} ({endpoint['endpoint_id']}): "
                                    f"{exc}") from None
            self.proxies[record.id].append(relay)
            opened.append({"key": binding.key, "host_ip": binding.host_ip,
                           "host_port": host_port})
        endpoint["ports"] = opened

    async def _bind(self, record: ContainerRecord, binding: ports.Binding,
                    target_ip: str) -> tuple[object, int]:
        low, high = binding.host_low, binding.host_high
        candidates = [0] if low == 0 else list(range(low, high + 1))
        last: OSError | None = None
        for port in candidates:
            if port and self._allocated(record, binding, port):
                last = OSError(f"Bind for {binding.host_ip}:{port} failed: port is already "
                               f"allocated")
                continue
            relay = proxy.make(binding.proto, (target_ip, binding.port))
            try:
                return relay, await relay.open(binding.host_ip, port)
            except OSError as exc:
                last = OSError(f"Error starting userland proxy: listen {binding.proto}4 "
                               f"{binding.host_ip}:{port}: bind: {_reason(exc)}")
        assert last is not None
        raise last

    def _allocated(self, record: ContainerRecord, binding: ports.Binding, port: int) -> bool:
        """Held by another container of this runtime (the Engine's port allocator)."""
        proto = binding.proto
        for other in self._records().values():
            endpoint = self._endpoint(other)
            if other.id == record.id or not endpoint:
                continue
            for item in endpoint.get("ports", []):
                if item["host_port"] == port and item["key"].endswith(f"/{proto}") and (
                        "0.0.0.0" in (item["host_ip"], binding.host_ip)
                        or item["host_ip"] == binding.host_ip):
                    return True
        return False

    async def _close_proxies(self, cid: str) -> None:
        for relay in self.proxies.pop(cid, []):
            await relay.close()

    def release_soon(self, record: ContainerRecord) -> None:
        """The container stopped or is removed: free its ports now (so they can be
        taken again at once), the rest in the background; attach waits for it."""
        if not self._endpoint(record) and record.id not in self.proxies:
            return
        for relay in self.proxies.get(record.id, []):
            server = getattr(relay, "server", None) or getattr(relay, "transport", None)
            if server is not None:
                server.close()
        if record.id not in self.releasing:
            task = asyncio.get_running_loop().create_task(self._release(record))
            self.releasing[record.id] = task
            task.add_done_callback(lambda _t, cid=record.id: self.releasing.pop(cid, None))

    async def detach(self, record: ContainerRecord) -> None:
        """A start that failed after attach: undo it now."""
        await self._release(record)

    async def _release(self, record: ContainerRecord) -> None:
        await self._close_proxies(record.id)
        endpoint = self._endpoint(record)
        if endpoint:
            if endpoint.get("veth"):
                await asyncio.to_thread(links.delete_link, endpoint["veth"])
            await asyncio.to_thread(links.delete_netns, endpoint["netns"])
        record.extra.pop("network", None)
        if record.id in self._records():
            self._save(record)
        await asyncio.to_thread(self._refresh_hosts)

    # --- /etc --------------------------------------------------------------------------
    def _write_etc(self, record: ContainerRecord, folder: pathlib.Path) -> None:
        hostname = record.config.get("Hostname") or record.id[:12]
        (folder / "hostname").write_text(hostname + "\n")
        host = record.host_config
        (folder / "resolv.conf").write_text(ipam.resolv_conf(
            _host_resolv_conf(), list(host.get("Dns") or []),
            list(host.get("DnsSearch") or []), list(host.get("DnsOptions") or [])))
        _write_in_place(folder / "hosts", self._hosts_text(record))

    def _hosts_text(self, record: ContainerRecord) -> str:
        endpoint = self._endpoint(record) or {}
        others = [(e["ip"], [r.name, r.config.get("Hostname") or r.id[:12], *_aliases(r)])
                  for r in self._records().values()
                  if r.id != record.id and (e := self._endpoint(r)) and e.get("ip")]
        hostname = record.config.get("Hostname") or record.id[:12]
        return ipam.hosts_file((endpoint.get("ip", ""), hostname,
                                [record.name, *_aliases(record)]),
                               others if endpoint.get("ip") else [],
                               ipam.extra_hosts(record.host_config.get("ExtraHosts")))

    def _refresh_hosts(self) -> None:
        """Rewrite, in place (the file is bind-mounted), the hosts file of every
        container of the bridge: a container that started or stopped changes them all."""
        for record in list(self._records().values()):
            endpoint = self._endpoint(record)
            if endpoint and endpoint.get("ip"):
                path = pathlib.Path(self._folder(record)) / "hosts"
                if path.exists():
                    _write_in_place(path, self._hosts_text(record))

    # --- what inspect and ps show -------------------------------------------------------
    def settings(self, record: ContainerRecord, pid: int = 0) -> dict:
        """NetworkSettings as the Engine shows them; addresses only while running."""
        endpoint = self._endpoint(record) or {}
        mode = mode_of(record.host_config)
        name = mode if mode in ("host", "none") else "bridge"
        ip = endpoint.get("ip", "")
        gateway = str(ipam.gateway(self.subnet)) if ip and self.subnet else ""
        prefix = self.subnet.prefixlen if ip and self.subnet else 0
        published = endpoint.get("ports", [])
        network = {"IPAMConfig": None, "Links": None, "Aliases": _aliases(record) or None,
                   "NetworkID": self.network_id if name == "bridge" else
                   hashlib.sha256(name.encode()).hexdigest(),
                   "EndpointID": endpoint.get("endpoint_id", ""), "Gateway": gateway,
                   "IPAddress": ip, "IPPrefixLen": prefix, "IPv6Gateway": "",
                   "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                   "MacAddress": endpoint.get("mac", ""), "DriverOpts": None}
        netns = endpoint.get("netns")
        return {"Bridge": "", "SandboxID": endpoint.get("sandbox_id", ""),
                "HairpinMode": False, "LinkLocalIPv6Address": "",
                "LinkLocalIPv6PrefixLen": 0,
                "Ports": ports.ports_map(record.config, published) if endpoint else {},
                "SandboxKey": f"/proc/{pid}/ns/net" if netns and pid else "",
                "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
                "EndpointID": network["EndpointID"], "Gateway": gateway,
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": ip,
                "IPPrefixLen": prefix, "IPv6Gateway": "", "MacAddress": network["MacAddress"],
                "Networks": {name: network}}

    def ps_ports(self, record: ContainerRecord) -> list[dict]:
        endpoint = self._endpoint(record)
        return ports.ps_ports(record.config, endpoint["ports"]) if endpoint else []

    def info(self) -> str:
        if not self.enabled:
            return self.note
        return f"bridge {self.bridge} {self.subnet}" + (f" ({self.note})" if self.note else "")

    # --- records -------------------------------------------------------------------------
    @staticmethod
    def _endpoint(record: ContainerRecord) -> dict | None:
        return record.extra.get("network")

    def _set_endpoint(self, record: ContainerRecord, endpoint: dict) -> None:
        record.extra["network"] = endpoint
        self._save(record)

    def _folder(self, record: ContainerRecord) -> str:
        return str(self.state_file.parent / "containers" / record.id)


def _aliases(record: ContainerRecord) -> list[str]:
    """`--network-alias` names (endpoints.py): more names for the address in /etc/hosts."""
    return list(record.extra.get(endpoints.KEY) or [])


def _binding_of(item: dict) -> ports.Binding:
    port, proto = ports.parse_key(item["key"])
    return ports.Binding(port, proto, item["host_ip"], item["host_port"], item["host_port"])


def _reason(exc: OSError) -> str:
    if exc.errno == 98:
        return "address already in use"
    if exc.errno == 99:
        return "cannot assign requested address"
    return exc.strerror or str(exc)


def _host_resolv_conf() -> str:
    try:
        return pathlib.Path("/etc/resolv.conf").read_text()
    except OSError:
        return ""


def _refuse_unsupported(config: dict, host_config: dict, mode: str) -> None:
    """The network options the runtime cannot honour: a 501 rather than a silent ignore."""
    if host_config.get("Links"):
        raise ApiError(501, "the exec runtime does not support --link; containers of the "
                            "node find each other by name")
    if config.get("MacAddress"):
        raise ApiError(501, "the exec runtime does not support --mac-address; the MAC "
                            "follows the address")
    if mode == "host" and any(host_config.get(k) for k in (
            "ExtraHosts", "Dns", "DnsSearch", "DnsOptions")):
        raise ApiError(501, "the exec runtime does not support --add-host or --dns with "
                            "--network host: the container uses the image's files")


def _write_in_place(path: pathlib.Path, text: str) -> None:
    """Same inode: a bind mount of the file sees the new content."""
    with open(path, "a+") as fh:
        fh.seek(0)
        fh.truncate()
        fh.write(text)
