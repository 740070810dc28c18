"""Outbound NAT and forwarding for the bridge, as iptables rules (the iptables command,
so nf_tables and legacy kernels both work). Each rule carries the comment `flock:BRIDGE`,
so the runtime finds and removes exactly its own rules, also after a crash.

Published ports do not use rules here: a userspace proxy (proxy.py) serves them, which
also answers on 127.0.0.1, where DNAT cannot reach without route_localnet."""

from __future__ import annotations

import shlex
import shutil
import subprocess


def available() -> bool:
    return shutil.which("iptables") is not None


def _iptables(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)


def rules(bridge: str, subnet: str) -> list[tuple[str, str, list[str]]]:
    """(table, chain, rule) for one bridge: masquerade what leaves the host from the
    subnet, accept forwarding to and from the bridge ahead of any DROP policy."""
    tag = ["-m", "comment", "--comment", f"flock:{bridge}"]
    return [("nat", "POSTROUTING", ["-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE", *tag]),
            ("filter", "FORWARD", ["-i", bridge, "-j", "ACCEPT", *tag]),
            ("filter", "FORWARD", ["-o", bridge, "-j", "ACCEPT", *tag])]


def install(bridge: str, subnet: str) -> str:
    """Put the rules in place (after removing stale ones); returns "" or why not."""
    if not available():
        return "iptables is not installed: containers have no outbound NAT"
    remove(bridge)
    for table, chain, rule in rules(bridge, subnet):
        done = _iptables("-t", table, "-I", chain, "1", *rule)
        if done.returncode != 0:
            remove(bridge)
            return f"iptables refused the NAT rules ({done.stderr.strip()}): containers " \
                   f"have no outbound NAT"
    return ""


def remove(bridge: str) -> None:
    """Delete every rule tagged for this bridge, whatever its exact form."""
    if not available():
        return
    tag = f"flock:{bridge}"
    for table in ("nat", "filter"):
        listing = _iptables("-t", table, "-S").stdout
        for line in listing.splitlines():
            if line.startswith("-A ") and (f'"{tag}"' in line or f" {tag} " in line
                                           or line.endswith(f" {tag}")):
                _iptables("-t", table, "-D", *shlex.split(line[3:]))


def present(bridge: str) -> list[str]:
    """The rules still tagged for the bridge (tests: nothing left behind)."""
    tag = f"flock:{bridge}"
    found = []
    for table in ("nat", "filter"):
        found += [line for line in _iptables("-t", table, "-S").stdout.splitlines()
                  if tag in line]
    return found

