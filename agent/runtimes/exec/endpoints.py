"""`NetworkingConfig.EndpointsConfig` at create (pure): what the exec runtime does with a
container's endpoint settings.

The docker CLI sends an endpoint for the container's network on every `docker run`, with
empty fields; only a field with a value asks for something. Aliases (`--network-alias`)
are honoured: the exec bridge resolves names through each container's /etc/hosts, as a
user-defined network of the Engine does through its DNS, so an alias is one more name for
the container's address there. The rest (a fixed address, IPv6, links, a MAC, driver
options, a second network) answers 501 rather than being ignored."""

from __future__ import annotations

from flock.agent.runtimes.exec.errors import ApiError, bad_request

BRIDGE_KEYS = ("", "default", "bridge")
KEY = "aliases"  # in the container record's extra
# the Engine's text for aliases outside a user-defined network (runconfig/errors.go)
ALIAS_NEEDS_NETWORK = "network-scoped alias is supported only for containers in user " \
                      "defined networks"
REFUSED = {
    "Links": "--link; containers of the node find each other by name",
    "MacAddress": "--mac-address; the MAC follows the address",
    "DriverOpts": "network driver options (driver-opt)",
}
REFUSED_IPAM = {
    "IPv4Address": "--ip; addresses come from the node's subnet",
    "IPv6Address": "--ip6; its network is IPv4 only",
    "LinkLocalIPs": "--link-local-ip; its network is IPv4 only",
}


def aliases(networking: object, mode: str) -> list[str]:
    """The aliases asked for (bridge mode only); 400 for a malformed section, 501 for a
    setting the runtime cannot honour. `mode` is bridge, host, none or a network name."""
    if networking is None:
        return []
    if not isinstance(networking, dict):
        raise bad_request("NetworkingConfig must be an object")
    endpoints = networking.get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise bad_request("NetworkingConfig.EndpointsConfig must be an object of network: "
                          "endpoint settings")
    found: list[str] = []
    for network, settings in endpoints.items():
        if not _is_own(network, mode):
            raise ApiError(501, f"the exec runtime connects a container to one network, "
                                f"its NetworkMode ({mode}), not also to {network}")
        if settings is None:
            continue
        if not isinstance(settings, dict):
            raise bad_request(f"NetworkingConfig.EndpointsConfig.{network} must be an object")
        _refuse_unsupported(settings, network)
        found += _alias_list(settings.get("Aliases"), network)
    if found and mode != "bridge":
        raise bad_request(ALIAS_NEEDS_NETWORK)
    return list(dict.fromkeys(found))


def _is_own(network: str, mode: str) -> bool:
    return network in BRIDGE_KEYS if mode == "bridge" else network == mode


def _refuse_unsupported(settings: dict, network: str) -> None:
    for key, what in REFUSED.items():
        if settings.get(key):
            _refuse(f"{network}.{key}", what)
    ipam = settings.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise bad_request(f"NetworkingConfig.EndpointsConfig.{network}.IPAMConfig must be "
                          f"an object")
    for key, what in REFUSED_IPAM.items():
        if ipam.get(key):
            _refuse(f"{network}.IPAMConfig.{key}", what)


def _refuse(field: str, what: str) -> None:
    raise ApiError(501, f"the exec runtime does not support "
                        f"NetworkingConfig.EndpointsConfig.{field} ({what})")


def _alias_list(value: object, network: str) -> list[str]:
    """Names for /etc/hosts: non-empty, no blanks (one word per name there)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise bad_request(f"NetworkingConfig.EndpointsConfig.{network}.Aliases must be a "
                          f"list of names")
    for alias in value:
        if not alias or any(c.isspace() for c in alias) or alias.startswith("#"):
            raise bad_request(f"invalid network alias {alias!r}: a name has no blanks")
    return list(value)
