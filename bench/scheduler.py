"""Scheduler speed: decisions per second and p50/p99 latency at 1,000 and 10,000 nodes.

Pure and in memory: builds a ClusterState with nodes (labels, images) and containers
(reservations, ports, labels), then times `Scheduler.place` for each strategy with no
rules, and for a constraint-heavy spec. Each timed decision is followed by a reservation
(not timed) that is released again, so the state stays the same size. Nodes carry
between half and one and a half times --containers-per-node containers.

    PYTHONPATH=. python bench/scheduler.py [--nodes 1000,10000] [--decisions 300]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from manager.cluster.model import HEALTHY, UNHEALTHY, Container, Node
from manager.cluster.state import ClusterState
from manager.scheduler import Scheduler, spec_from_create

GIB = 1024**3
REGIONS = ["eu-west", "eu-central", "us-east", "us-west", "ap-south"]
SIZES = ["s", "m", "l", "xl"]
IMAGES = [f"app{i}:1.{i % 4}" for i in range(50)]


def build_state(nodes: int, per_node: int, rng: random.Random) -> ClusterState:
    state = ClusterState()
    for n in range(nodes):
        node_id = f"{n:08x}" + "0" * 56
        labels = {
            "region": rng.choice(REGIONS),
            "size": rng.choice(SIZES),
            "storagedriver": "overlay2",
            "ostype": "linux",
        }
        if n % 10 == 0:
            labels["containerslots"] = str(per_node * 3 // 2 + 1)
        health = UNHEALTHY if n % 97 == 0 else HEALTHY
        state.upsert_node(
            Node(
                node_id,
                f"node-{n}",
                f"10.0.{n // 256}.{n % 256}:4001",
                cpus=8,
                memory=16 * GIB,
                labels=labels,
                health=health,
            )
        )
        state.set_node_images(node_id, rng.sample(IMAGES, 5))
        for c in range(rng.randint(per_node // 2, per_node * 3 // 2)):
            ports = [(8000 + c, "tcp")] if c % 3 == 0 else []
            state.upsert_container(
                Container(
                    id=f"{n:08x}{c:04x}" + "c" * 52,
                    name=f"ctr-{n}-{c}",
                    node_id=node_id,
                    image=rng.choice(IMAGES),
                    labels={"app": f"svc{c % 7}", "tier": rng.choice(["web", "db"])},
                    reserved_cpus=rng.choice([0, 0, 0.5, 1]),
                    reserved_memory=rng.choice([0, 256, 512]) * 1024**2,
                    state=rng.choice(["running", "running", "exited"]),
                    ports=ports,
                )
            )
    return state


SPECS = {
    "no rules": {"Image": "app1:1.1"},
    "-m 512m -c 1": {"Image": "app1:1.1", "HostConfig": {"Memory": 512 * 1024**2, "CpuShares": 1}},
    "constraint-heavy": {
        "Image": "app1:1.1",
        "Env": [
            "constraint:region==eu-*",
            "constraint:size!=s",
            "constraint:storagedriver==/overlay.*/",
            "constraint:ostype==linux",
            "constraint:size==~xl",
            "affinity:image==app3:1.3",
            "affinity:tier==~web",
        ],
        "HostConfig": {
            "Memory": 256 * 1024**2,
            "PortBindings": {"8001/tcp": [{"HostPort": "8001"}]},
        },
    },
}


def run(state: ClusterState, scheduler: Scheduler, body: dict, decisions: int) -> list[float]:
    spec = spec_from_create(body)
    latencies = []
    for i in range(decisions):
        start = time.perf_counter()
        decision = scheduler.place(state, spec)
        latencies.append(time.perf_counter() - start)
        token = state.reserve(decision.node.id, f"bench-{i}", spec.cpus, spec.memory, spec.ports)
        state.release(token)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1000,10000")
    parser.add_argument("--containers-per-node", type=int, default=10)
    parser.add_argument("--decisions", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(7)
    print(
        f"{'nodes':>6} {'containers':>10} {'strategy':<8} {'spec':<17}"
        f" {'dec/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for count in [int(n) for n in args.nodes.split(",")]:
        built = time.perf_counter()
        state = build_state(count, args.containers_per_node, rng)
        built = time.perf_counter() - built
        cases = [(s, "no rules") for s in ("spread", "binpack", "random")]
        cases += [("spread", "-m 512m -c 1"), ("binpack", "-m 512m -c 1")]
        cases += [("spread", "constraint-heavy")]
        for strategy, spec_name in cases:
            scheduler = Scheduler(strategy, rng=random.Random(1))
            lat = run(state, scheduler, SPECS[spec_name], args.decisions)
            lat.sort()
            p50 = statistics.median(lat) * 1000
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
            print(
                f"{count:>6} {state.container_count():>10} {strategy:<8} {spec_name:<17}"
                f" {len(lat) / sum(lat):>8.0f} {p50:>7.2f} {p99:>7.2f}"
            )
        print(f"# state with {count} nodes built in {built:.1f}s")


if __name__ == "__main__":
    main()
