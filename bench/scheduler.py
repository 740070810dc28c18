"""Scheduler speed and placement quality at 1,000 and 10,000 nodes (issue 8).

In process, no network. Builds a ClusterState of nodes of four sizes with labels and
images and 100,000 existing containers (reservations, host ports, names, labels), then
times `Scheduler.place` for six workloads: plain, `-m` reservations, a label constraint
matching a quarter of the nodes, an image affinity, a container anti-affinity
(`affinity:container!=web-*`) and a host port, under spread and binpack; plus what a
plain `docker run` sends through the manager (a soft image affinity). Each timed
decision is followed by a reservation (not timed) that is released again, so that every
workload sees the same cluster.

Placement quality, printed beside speed:
- "exact": of a sample of decisions, how many chose a node ranked best by the filter
  chain's exhaustive ranking (`Scheduler.place_by_chain`);
- on a cluster of identical empty nodes, the per-node container counts (min/max/stdev)
  after a run of decisions that keep their reservations: spread must leave them even,
  binpack must use the fewest nodes.
Peak memory is the process's peak RSS. dec/s, p50 and p99 are wall-clock; "p99 cpu"
is the 99th percentile of the CPU time per decision, which leaves out the time the
process waited for a core on a shared machine.

    PYTHONPATH=. python bench/scheduler.py [--nodes 1000,10000] [--decisions 2000]
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import statistics
import time

from flock.manager.cluster.model import HEALTHY, UNHEALTHY, Container, Node
from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler import Scheduler, spec_from_create

MIB = 1024**2
GIB = 1024**3
SIZES = {"s": (2, 4 * GIB), "m": (4, 8 * GIB), "l": (8, 16 * GIB), "xl": (16, 64 * GIB)}
ZONES = ["z0", "z1", "z2", "z3"]
IMAGES = [f"app{i}:1.{i % 4}" for i in range(50)]
PORT = 8080

WORKLOADS = {
    "plain": {"Image": "app1:1.1"},
    "-m 512m": {"Image": "app1:1.1", "HostConfig": {"Memory": 512 * MIB}},
    "-m 512m -c 1": {"Image": "app1:1.1", "HostConfig": {"Memory": 512 * MIB, "CpuShares": 1}},
    "constraint 1/4": {"Image": "app1:1.1", "Env": ["constraint:zone==z1"]},
    "image affinity": {"Image": "app7:1.3", "Env": ["affinity:image==app7:1.3"]},
    "anti-affinity": {"Image": "app1:1.1", "Env": ["affinity:container!=web-*"]},
    # what `docker run app1:1.1` asks through the manager, which adds a soft affinity
    # to the nodes that have the image already
    "plain, via API": {"Image": "app1:1.1", "Env": ["affinity:image==~app1:1.1"]},
    "host port": {
        "Image": "app1:1.1",
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": str(PORT)}]}},
    },
}


def build_state(nodes: int, containers: int, rng: random.Random) -> ClusterState:
    """Nodes of four sizes, a zone each (a quarter per zone), 5 of 50 images each; the
    containers spread unevenly, `web-*` ones on a third of the nodes only, host port
    8080 in use on half of them, 1% of the nodes unhealthy."""
    state = ClusterState()
    ids = [f"{n:08x}" + "0" * 56 for n in range(nodes)]
    for n, node_id in enumerate(ids):
        size = rng.choice(list(SIZES))
        cpus, memory = SIZES[size]
        labels = {"size": size, "zone": ZONES[n % 4], "region": rng.choice(["eu", "us", "ap"]),
                  "storagedriver": "overlay2", "ostype": "linux"}
        if n % 10 == 0:
            labels["containerslots"] = str(containers // nodes * 3)
        health = UNHEALTHY if n % 100 == 99 else HEALTHY
        addr = f"10.{n // 65536}.{n // 256 % 256}.{n % 256}:4001"
        state.upsert_node(Node(node_id, f"node-{n}", addr, cpus=cpus, memory=memory,
                               labels=labels, health=health))
        state.set_node_images(node_id, rng.sample(IMAGES, 5))
    weights = [rng.uniform(0.5, 1.5) for _ in ids]
    hosts = rng.choices(range(nodes), weights=weights, k=containers)
    per_node = containers / nodes
    ported: set[int] = set()
    for c, n in enumerate(hosts):
        web = n % 3 == 0 and c % 2 == 0
        cpus, memory = SIZES[state.node(ids[n]).labels["size"]]
        # about 40% of a node reserved on average, in steps that nodes share
        share = rng.choice([0, 0.5, 1, 1.5]) * 0.5 / per_node
        port = n % 2 == 0 and n not in ported
        if port:
            ported.add(n)
        state.upsert_container(Container(
            id=f"{c:016x}" + "c" * 48,
            name=f"web-{c}" if web else f"svc-{c}",
            node_id=ids[n],
            image=rng.choice(IMAGES),
            labels={"app": f"svc{c % 7}", "tier": "web" if web else "db"},
            reserved_cpus=round(share * cpus, 2),
            reserved_memory=int(share * memory) // MIB * MIB,
            state=rng.choice(["running", "running", "exited"]),
            ports=[(PORT, "tcp")] if port else [],
        ))
    return state


def timed(
    state: ClusterState, scheduler: Scheduler, body: dict, decisions: int
) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU seconds per decision. The CPU figure leaves out the time this
    process waited for a core (the machine is shared), which the wall clock counts."""
    spec = spec_from_create(body)
    scheduler.place(state, spec)  # warm: the scheduler's index is built on first use
    wall, cpu = [], []
    for i in range(decisions):
        start, start_cpu = time.perf_counter(), time.thread_time()
        decision = scheduler.place(state, spec)
        cpu.append(time.thread_time() - start_cpu)
        wall.append(time.perf_counter() - start)
        token = state.reserve(decision.node.id, f"bench-{i}", spec.cpus, spec.memory, spec.ports)
        state.release(token)
    return wall, cpu


def exact_share(state: ClusterState, strategy: str, body: dict, samples: int) -> str:
    """How many decisions chose a node the exhaustive ranking puts first (weight, then
    container count; random: any candidate)."""
    scheduler = Scheduler(strategy, rng=random.Random(3))
    if not hasattr(scheduler, "place_by_chain"):
        return "-"
    spec = spec_from_create(body)
    exact = 0
    for _ in range(samples):
        chosen = scheduler.place(state, spec).node.id
        ranking = scheduler.explain(state, spec, limit=len(state.node_map())).ranking
        best = ranking[0][1:]
        exact += any(node.id == chosen and (strategy == "random" or (weight, count) == best)
                     for node, weight, count in ranking)
    return f"{exact}/{samples}"


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def speed_table(count: int, containers: int, decisions: int, samples: int) -> None:
    rng = random.Random(7)
    built = time.perf_counter()
    state = build_state(count, containers, rng)
    built = time.perf_counter() - built
    print(f"\n## {count} nodes, {state.container_count()} containers (built in {built:.1f}s)")
    print(f"| {'workload':<15} | {'strategy':<8} | {'dec/s':>7} | {'p50 ms':>6} | {'p99 ms':>6}"
          f" | {'p99 cpu':>7} | {'exact':>7} |")
    print(f"|{'-' * 17}|{'-' * 10}|{'-' * 9}|{'-' * 8}|{'-' * 8}|{'-' * 9}|{'-' * 9}|")
    for name, body in WORKLOADS.items():
        strategies = ["spread", "binpack"] + (["random"] if name.startswith("plain") else [])
        for strategy in strategies:
            scheduler = Scheduler(strategy, rng=random.Random(1))
            wall, cpu = (sorted(values) for values in timed(state, scheduler, body, decisions))
            print(f"| {name:<15} | {strategy:<8} | {len(wall) / sum(wall):>7.0f}"
                  f" | {statistics.median(wall) * 1000:>6.3f}"
                  f" | {percentile(wall, 0.99) * 1000:>6.3f} | {percentile(cpu, 0.99) * 1000:>7.3f}"
                  f" | {exact_share(state, strategy, body, samples):>7} |")
    print(f"reserve + release (the indexes' upkeep moved out of decisions):"
          f" {upkeep(state) * 1e6:.1f} µs; peak RSS"
          f" {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def upkeep(state: ClusterState, rounds: int = 2000) -> float:
    """Seconds per reserve + release pair, with the scheduler's index attached."""
    ids = list(state.node_map())
    start = time.perf_counter()
    for i in range(rounds):
        token = state.reserve(ids[i % len(ids)], "", 0.5, 256 * MIB, [(PORT + 1, "tcp")])
        state.release(token)
    return (time.perf_counter() - start) / rounds


def quality_table(count: int) -> None:
    """Identical empty nodes (8 CPUs, 16 GiB); decisions keep their reservations."""
    print(f"\n## placement quality, {count} identical empty nodes (8 CPUs, 16 GiB)")
    print(f"| {'strategy':<8} | {'workload':<12} | {'decisions':>9} | {'nodes used':>10}"
          f" | {'fewest possible':>15} | {'min':>3} | {'max':>3} | {'stdev':>5} |")
    print(f"|{'-' * 10}|{'-' * 14}|{'-' * 11}|{'-' * 12}|{'-' * 17}|{'-' * 5}|{'-' * 5}|{'-' * 7}|")
    runs = [("spread", "plain", {"Image": "a"}, count * 7 // 2, None),
            ("spread", "-m 1g", {"Image": "a", "HostConfig": {"Memory": GIB}}, count * 3, None),
            ("binpack", "-m 1g", {"Image": "a", "HostConfig": {"Memory": GIB}}, count * 3, 16),
            ("binpack", "-c 1", {"Image": "a", "HostConfig": {"CpuShares": 1}}, count * 2, 8)]
    for strategy, label, body, decisions, per_node in runs:
        state = ClusterState()
        for n in range(count):
            state.upsert_node(Node(f"n{n}", f"n{n}", "x:1", cpus=8, memory=16 * GIB,
                                   health=HEALTHY))
        scheduler = Scheduler(strategy, rng=random.Random(5))
        spec = spec_from_create(body)
        for i in range(decisions):
            node_id = scheduler.place(state, spec).node.id
            state.reserve(node_id, f"c{i}", spec.cpus, spec.memory, spec.ports)
        counts = [state.usage(f"n{n}").containers for n in range(count)]
        used = sum(1 for c in counts if c)
        fewest = math.ceil(decisions / per_node) if per_node else count
        print(f"| {strategy:<8} | {label:<12} | {decisions:>9} | {used:>10} | {fewest:>15}"
              f" | {min(counts):>3} | {max(counts):>3} | {statistics.pstdev(counts):>5.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1000,10000")
    parser.add_argument("--containers", type=int, default=100_000)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--exact-samples", type=int, default=20,
                        help="decisions per workload checked against the exhaustive ranking")
    args = parser.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    for count in counts:
        speed_table(count, args.containers, args.decisions, args.exact_samples)
    quality_table(min(counts))


if __name__ == "__main__":
    main()
