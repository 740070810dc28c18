"""What resolving a container reference costs now that the Swarm ID is one (issue 21,
item 7): `ClusterState.resolve` over N containers on 100 nodes, by each kind of
reference, in microseconds per call (median of --rounds runs of --calls calls).

A full ID or name is a dict lookup; a full Swarm ID goes through the container-label
index to the containers of the node(s) holding it; a short ID or Swarm ID (12
characters) and an unknown reference scan every container, as the ID-prefix lookup
always did.

    PYTHONPATH=. python bench/container_refs.py [--containers 10000]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time

from flock.manager.cluster.labels import SWARM_ID_LABEL
from flock.manager.cluster.model import Container, Node
from flock.manager.cluster.state import ClusterState, NotFound


def build(count: int, nodes: int = 100) -> tuple[ClusterState, list[Container]]:
    state = ClusterState()
    for i in range(nodes):
        state.upsert_node(Node(id=f"n{i}", name=f"node-{i}", addr=f"10.0.0.{i}:2375",
                               cpus=8, memory=1 << 34))
    made = []
    for i in range(count):
        container = Container(id=secrets.token_hex(32), name=f"c{i}", node_id=f"n{i % nodes}",
                              labels={SWARM_ID_LABEL: secrets.token_hex(32)})
        state.upsert_container(container)
        made.append(container)
    return state, made


def per_call_us(state: ClusterState, refs: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for ref in refs:
            try:
                state.resolve(ref)
            except NotFound:
                pass
        times.append((time.perf_counter() - start) / len(refs) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    state, made = build(args.containers)
    sample = made[:: max(len(made) // args.calls, 1)][: args.calls]
    kinds = {
        "full ID": [c.id for c in sample],
        "name": [c.name for c in sample],
        "full Swarm ID": [c.swarm_id for c in sample],
        "12-char ID": [c.id[:12] for c in sample],
        "12-char Swarm ID": [c.swarm_id[:12] for c in sample],
        "unknown": ["zz" + c.id[:10] for c in sample],
    }
    print(f"resolve over {args.containers} containers on 100 nodes, us per call (median)")
    for kind, refs in kinds.items():
        print(f"  {kind:<18} {per_call_us(state, refs, args.rounds):10.1f}")


if __name__ == "__main__":
    main()
