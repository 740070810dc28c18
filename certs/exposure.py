"""Whether an address we listen on can be reached from other machines: without TLS,
Flock listens only where nobody else can connect, unless told `--insecure`."""

from __future__ import annotations

import ipaddress

WILDCARDS = ("", "0.0.0.0", "::")


def is_loopback(host: str) -> bool:
    """True for loopback IPs and `localhost`; any other name counts as reachable, since
    what it resolves to can change under us."""
    host = host.strip("[]")
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_wildcard(host: str) -> bool:
    """0.0.0.0 / :: : every interface, so no one name a cert could be checked against."""
    return host.strip("[]") in WILDCARDS


def refusal(flag: str, address: str, tls_flags: str,
            local: str = "127.0.0.1 or a unix socket") -> str:
    """The message for a plaintext listener on a reachable address."""
    return (f"refusing to listen on {address} ({flag}) without TLS: anyone who can reach "
            f"it gets full control. Add {tls_flags}, listen on {local}, or pass --insecure "
            "if this network is trusted")
