"""What an exec runtime's network leaves on the machine (its bridge, the veths on it,
its tagged iptables rules, its named network namespaces), read from the runtime's state
folder: for asserting that nothing is left behind, and for removing it after a test that
had to kill a runtime."""

from __future__ import annotations

import json
import pathlib

from flock.agent.runtimes.exec import links, nat


def bridge_of(state_dir: pathlib.Path) -> str:
    data = json.loads((pathlib.Path(state_dir) / "network.json").read_text())
    return data["bridge"]


def leftovers(state_dir: pathlib.Path) -> list[str]:
    """Everything of the runtime's network still present on the machine."""
    path = pathlib.Path(state_dir) / "network.json"
    if not path.exists():
        return []
    bridge = bridge_of(state_dir)
    found = [f"link {bridge}"] if links.link_exists(bridge) else []
    found += [f"veth {name}" for name in links.bridge_ports(bridge)]
    found += [f"rule {rule}" for rule in nat.present(bridge)]
    found += [f"netns {cid}" for cid in _own_netns(state_dir)]
    return found


def _own_netns(state_dir: pathlib.Path) -> list[str]:
    folder = pathlib.Path(state_dir) / "containers"
    ids = {p.name[:12] for p in folder.iterdir()} if folder.exists() else set()
    netns = pathlib.Path(links.NETNS_DIR)
    names = [p.name for p in netns.iterdir()] if netns.exists() else []
    return [n for n in names if n.startswith("flk-") and n[4:] in ids]


def remove_leftovers(state_dir: pathlib.Path) -> None:
    """After the runtime and its containers are gone (killed by PID)."""
    path = pathlib.Path(state_dir) / "network.json"
    if not path.exists():
        return
    bridge = bridge_of(state_dir)
    for name in _own_netns(state_dir):
        links.delete_netns(name)
    for name in links.bridge_ports(bridge):
        links.delete_link(name)
    nat.remove(bridge)
    links.delete_link(bridge)
