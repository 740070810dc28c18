"""Failure handling, timed: how long until a dead node is seen, until its
`reschedule:on-node-failure` container runs elsewhere, and until a killed primary
manager is replaced. Real processes: etcd, exec-runtime agents, managers.

    python bench/failover.py [--runs 5] [--heartbeat 1s] [--replication-ttl 3s]

Each run kills an agent (and its containers: a machine failure) with SIGKILL and
polls the manager's API every 50 ms; then kills the primary of three replicated
managers. Prints the median, min and max of each figure.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from flock.common.durations import parse_duration  # noqa: E402
from flock.common.table import print_table  # noqa: E402
from tests.support.etcd import Etcd  # noqa: E402
from tests.support.procs import Agent, Manager, wait_for  # noqa: E402


def web_node(manager: Manager) -> str:
    status, listing = manager.api("GET", "/containers/json", timeout=5)
    for entry in listing if status == 200 else []:
        node, _, name = entry["Names"][0].lstrip("/").partition("/")
        if name == "web":
            return node
    return ""


def node_failure_run(folder: pathlib.Path, url: str, heartbeat: str) -> tuple[float, float]:
    """(seconds until Unhealthy, seconds until the container runs on another node)."""
    agents = {f"n{i}": Agent(f"n{i}", folder, url, heartbeat=heartbeat, ttl="60s").start()
              for i in (1, 2)}
    manager = Manager("manager", folder, url, extra=["--heartbeat", heartbeat])
    manager.start()
    try:
        wait_for(lambda: list(manager.nodes().values()) == ["Healthy"] * 2, 30, "nodes")
        manager.import_busybox()
        status, _ = manager.api("POST", "/containers/create?name=web", {
            "Image": "busybox", "Cmd": ["sleep", "600"], "Env": ["reschedule:on-node-failure"]})
        assert status == 201
        assert manager.api("POST", "/containers/web/start")[0] == 204
        node = wait_for(lambda: web_node(manager), 10, "web listed")
        victim = agents[node]
        victim.kill9()
        victim.kill_shims()
        start = time.monotonic()
        wait_for(lambda: manager.nodes().get(node) == "Unhealthy", 30, "unhealthy", 0.05)
        detected = time.monotonic() - start
        wait_for(lambda: web_node(manager) not in ("", node), 30, "rescheduled", 0.05)
        moved = time.monotonic() - start
        return detected, moved
    finally:
        manager.api("DELETE", "/containers/web?force=1")
        manager.stop()
        for agent in agents.values():
            agent.cleanup()


def leader_failover_run(folder: pathlib.Path, url: str, ttl: str) -> float:
    """Seconds from SIGKILL of the primary until another manager says it is primary."""
    agent = Agent("n1", folder, url, ttl="60s").start()
    managers = []
    for index in range(3):
        manager = Manager(f"m{index}", folder, url,
                          extra=["--replication", "--replication-ttl", ttl])
        manager.args[1:1] = ["--advertise", manager.addr]
        managers.append(manager.start())
    try:
        def primary() -> Manager | None:
            found = [m for m in managers if m.alive and m.role().get("Role") == "primary"]
            return found[0] if len(found) == 1 else None

        leader = wait_for(primary, 30, "a primary")
        leader.kill9()
        start = time.monotonic()
        wait_for(primary, 60, "a new primary", 0.05)
        return time.monotonic() - start
    finally:
        for manager in managers:
            manager.stop()
        agent.cleanup()


def summary(label: str, values: list[float]) -> list[str]:
    return [label, f"{statistics.median(values):.2f}", f"{min(values):.2f}",
            f"{max(values):.2f}", str(len(values))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--heartbeat", default="1s")
    parser.add_argument("--replication-ttl", default="3s")
    args = parser.parse_args()
    detections, moves, failovers = [], [], []
    with tempfile.TemporaryDirectory(prefix="flock-failover-") as tmp:
        root = pathlib.Path(tmp)
        etcd = Etcd(root / "etcd").start()
        try:
            for run in range(args.runs):
                folder = root / f"run{run}"
                folder.mkdir()
                detected, moved = node_failure_run(folder, etcd.url(f"/n{run}"), args.heartbeat)
                detections.append(detected)
                moves.append(moved)
                failovers.append(leader_failover_run(folder, etcd.url(f"/l{run}"),
                                                     args.replication_ttl))
                print(f"run {run + 1}: detect {detected:.2f}s, reschedule {moved:.2f}s, "
                      f"failover {failovers[-1]:.2f}s", file=sys.stderr, flush=True)
        finally:
            etcd.stop()
    print(f"heartbeat {args.heartbeat} (failure retry 3), replication TTL "
          f"{parse_duration(args.replication_ttl):g}s")
    print_table(["FIGURE (seconds)", "MEDIAN", "MIN", "MAX", "RUNS"], [
        summary("node failure detection", detections),
        summary("rescheduled container running", moves),
        summary("leader failover", failovers),
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
