"""What the manager's metrics cost a scheduling decision (issue 6, observability).

bench/scheduler.py times `Scheduler.place` without an observer; the manager attaches
its metrics (manager/observability/metrics.py) as one. This times the same decisions
both ways on bench/scheduler.py's cluster, in interleaved rounds so that a shared
machine's load falls on both alike, and prints the medians in CPU time per decision.

    PYTHONPATH=. python bench/metrics_overhead.py [--nodes 1000] [--rounds 11]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scheduler import WORKLOADS, build_state  # noqa: E402 - the sibling benchmark

from flock.manager.observability import ManagerMetrics  # noqa: E402
from flock.manager.scheduler import Scheduler, spec_from_create  # noqa: E402


def per_decision(state, spec, observer, decisions: int) -> float:
    """CPU µs per decision (the state is left as it was: no reservations)."""
    scheduler = Scheduler("spread", rng=random.Random(1))
    scheduler.observer = observer
    scheduler.place(state, spec)  # the index is built on first use
    start = time.thread_time()
    for _ in range(decisions):
        scheduler.place(state, spec)
    return (time.thread_time() - start) / decisions * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--containers-per-node", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--decisions", type=int, default=500, help="per round")
    args = parser.parse_args()
    state = build_state(args.nodes, args.nodes * args.containers_per_node, random.Random(7))
    metrics = ManagerMetrics(state)
    print(f"## {args.nodes} nodes: median CPU µs per decision, {args.rounds} interleaved "
          f"rounds of {args.decisions}")
    print(f"| {'workload':<15} | {'no metrics':>10} | {'metrics':>8} | {'change':>7} |")
    print(f"|{'-' * 17}|{'-' * 12}|{'-' * 10}|{'-' * 9}|")
    sums = [0.0, 0.0]
    for name, body in WORKLOADS.items():
        spec = spec_from_create(body)
        times: dict[bool, list[float]] = {False: [], True: []}
        for index in range(args.rounds):
            for on in (False, True) if index % 2 else (True, False):
                times[on].append(per_decision(state, spec, metrics if on else None,
                                              args.decisions))
        off, on = statistics.median(times[False]), statistics.median(times[True])
        sums[0] += off
        sums[1] += on
        print(f"| {name:<15} | {off:>10.1f} | {on:>8.1f} | {100 * (on - off) / off:>+6.1f}% |")
    print(f"| {'all workloads':<15} | {sums[0]:>10.1f} | {sums[1]:>8.1f} |"
          f" {100 * (sums[1] - sums[0]) / sums[0]:>+6.1f}% |")
    start = time.thread_time()
    for _ in range(200_000):
        begin = time.perf_counter()
        metrics.placed(time.perf_counter() - begin)
    print(f"the observer alone (two clock reads, a counter, a histogram):"
          f" {(time.thread_time() - start) / 200_000 * 1e6:.2f} CPU µs per decision")


if __name__ == "__main__":
    main()
