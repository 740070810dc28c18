"""Replicated managers on a real etcd, as processes: the high-availability set-up the
replication, cron failover and cron CLI tests and the cron bench all start from (etcd,
exec agents, managers that elect a primary), and who is primary among them."""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Iterator

from tests.support.etcd import Etcd
from tests.support.procs import Agent, Manager, wait_for


def replicated(name: str, folder: pathlib.Path, url: str, ttl: str, *options: str) -> Manager:
    """A `--replication` manager that advertises its own address (replicas forward to
    it there); `options` go before the command (global flags such as --log-format)."""
    manager = Manager(name, folder, url, extra=["--replication", "--replication-ttl", ttl])
    manager.args[1:1] = ["--advertise", f"127.0.0.1:{manager.port}"]
    manager.args[0:0] = list(options)
    return manager


def primary(managers: list[Manager]) -> Manager | None:
    """The one live manager that says it is primary; None while there is none, or several."""
    found = [m for m in managers if m.alive and m.role().get("Role") == "primary"]
    return found[0] if len(found) == 1 else None


@contextlib.contextmanager
def ha_cluster(folder: pathlib.Path, prefix: str, ttl: str, *, agents: int = 2,
               managers: int = 3, options: tuple[str, ...] = ()
               ) -> Iterator[tuple[Etcd, str, list[Manager]]]:
    """etcd, `agents` exec agents (n1, n2 ...) and `managers` replicated managers (m1 ...),
    each manager seeing every node healthy. Yields etcd, the discovery URL and the list of
    managers: whatever is in that list at the end is stopped, so a test that replaces a
    killed manager puts the new one there."""
    etcd = Etcd(folder / "etcd").start()
    url = etcd.url(prefix)
    nodes = [Agent(f"n{i}", folder, url, ttl="60s").start() for i in range(1, agents + 1)]
    running = [replicated(f"m{i}", folder, url, ttl, *options).start()
               for i in range(1, managers + 1)]
    try:
        for manager in running:
            wait_for(lambda m=manager: list(m.nodes().values()) == ["Healthy"] * agents, 30,
                     f"{manager.name} to see {agents} healthy nodes")
        yield etcd, url, running
    finally:
        for manager in running:
            manager.stop()
        for agent in nodes:
            agent.cleanup()
        etcd.stop()
