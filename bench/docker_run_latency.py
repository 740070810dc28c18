"""`docker run -d` latency through the Flock manager against straight to the engine.

Same engine, same run, interleaved in pairs whose order alternates (direct first, then
Flock first on the next pair), so that drift and warm caches hit both sides alike. Two
levels are measured: the real docker CLI (`docker run -d busybox true`, process start
included, which is what a user feels) and the Docker SDK (create + start, the API cost
alone). For each: the median and p90 of both sides, the ratio of the medians
flock/direct and its 95% interval, bootstrapped over the pairs (bench/paired_stats.py).
Issue 19's goal is a ratio <= 1.02. Each container is removed right after its run,
untimed. Needs root (it starts its own dockerd).

    python bench/docker_run_latency.py [--runs 100] [--cmd 'sleep 600'] [--json FILE]
                                       [--levels cli,sdk]

`--levels cli` measures the CLI alone: twice the pairs in the same time, for a narrower
interval where the two trees of an A/B differ by less than the run-to-run spread.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from bench.paired_stats import (  # noqa: E402
    alternating_pairs,
    bootstrap_ratio_ci,
    median_ratio,
    percentile,
)
from flock.common.table import print_table  # noqa: E402
from flock.local_cluster import LocalCluster  # noqa: E402
from tests.support.engines import start_engine  # noqa: E402

# One `docker run -d` through one door, returning the new container's ID.
Run = Callable[[], str]


class Door:
    """The engine's socket or the manager, at one level (CLI or SDK): how to run a
    container through it, and how to remove it again through it (untimed)."""

    def __init__(self, run: Run, client: docker.DockerClient) -> None:
        self.run = run
        self.client = client

    def timed_run(self) -> float:
        start = time.perf_counter()
        container_id = self.run()
        elapsed = (time.perf_counter() - start) * 1000
        # Removed at once, outside the timing, so that every run meets an engine with
        # the same few containers (a growing list makes each later read slower).
        remove(self.client, container_id)
        return elapsed


def remove(client: docker.DockerClient, container_id: str) -> None:
    """`rm -f`, once more a moment later if the engine raced the container's own exit
    ("Could not kill running container ...: is not running", a 500 dockerd gives
    either way: seen straight to the engine as well as through Flock)."""
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.APIError as exc:
        if "is not running" not in str(exc):
            raise
        time.sleep(0.05)
        client.api.remove_container(container_id, force=True)


def cli_run(url: str, command: list[str]) -> Run:
    def run() -> str:
        done = subprocess.run(["docker", "-H", url, "run", "-d", "busybox", *command],
                              check=True, capture_output=True, text=True)
        return done.stdout.strip()
    return run


def sdk_run(client: docker.DockerClient, command: list[str]) -> Run:
    def run() -> str:
        container = client.api.create_container("busybox", command)
        client.api.start(container["Id"])
        return container["Id"]
    return run


def measure_pairs(direct: Door, flock: Door, runs: int) -> tuple[list[float], list[float]]:
    """`runs` pairs of timings (ms); even pairs run direct first, odd ones Flock first."""
    return alternating_pairs(direct.timed_run, flock.timed_run, runs)


def figures(direct: list[float], flock: list[float]) -> dict[str, object]:
    """The level's figures, and its timings pair by pair (`direct_ms`, `flock_ms`), so
    that rounds saved with --json can be pooled for a narrower interval."""
    low, high = bootstrap_ratio_ci(direct, flock)
    return {"pairs": len(direct),
            "direct_median_ms": statistics.median(direct), "direct_p90_ms": percentile(direct, .9),
            "flock_median_ms": statistics.median(flock), "flock_p90_ms": percentile(flock, .9),
            "ratio": median_ratio(direct, flock), "ratio_ci95_low": low, "ratio_ci95_high": high,
            "direct_ms": direct, "flock_ms": flock}


LEVELS = {"cli": "docker CLI", "sdk": "SDK create+start"}


def measure(engine_url: str, manager_url: str, runs: int, command: list[str],
            wanted: tuple[str, ...] = tuple(LEVELS)) -> dict[str, dict[str, object]]:
    direct = docker.DockerClient(base_url=engine_url)
    through = docker.DockerClient(base_url=manager_url.replace("tcp://", "http://"))
    levels = {
        "cli": (Door(cli_run(engine_url, command), direct),
                Door(cli_run(manager_url, command), through)),
        "sdk": (Door(sdk_run(direct, command), direct),
                Door(sdk_run(through, command), through)),
    }
    results = {}
    for key in wanted:
        level, (straight, via) = LEVELS[key], levels[key]
        for _ in range(3):  # warm up both paths
            straight.timed_run()
            via.timed_run()
        results[level] = figures(*measure_pairs(straight, via, runs))
    return results


def levels_arg(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [part for part in chosen if part not in LEVELS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown level {', '.join(unknown) or '(none)'}: use cli, sdk or cli,sdk")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="pairs per level")
    parser.add_argument("--json", metavar="FILE", help="also save the figures here")
    parser.add_argument("--cmd", default="true",
                        help="the container's command (default: true, which exits at once;"
                             " e.g. 'sleep 600' for a container that keeps running)")
    parser.add_argument("--levels", default="cli,sdk", type=levels_arg,
                        help="which to measure, of cli and sdk (default: both)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flock-bench-") as tmp:
        engine = start_engine(pathlib.Path(tmp) / "engine")
        try:
            engine.import_busybox()
            with LocalCluster(agents=1, runtime="docker", docker_host=engine.url) as cluster:
                results = measure(engine.url, cluster.url, args.runs, shlex.split(args.cmd),
                                  args.levels)
        finally:
            engine.stop()
    rows = [[level, f"{r['direct_median_ms']:.1f}", f"{r['direct_p90_ms']:.1f}",
             f"{r['flock_median_ms']:.1f}", f"{r['flock_p90_ms']:.1f}", f"{r['ratio']:.3f}",
             f"{r['ratio_ci95_low']:.3f}-{r['ratio_ci95_high']:.3f}"]
            for level, r in results.items()]
    print_table(["LEVEL", "DIRECT MEDIAN ms", "DIRECT P90 ms", "FLOCK MEDIAN ms",
                 "FLOCK P90 ms", "RATIO", "95% CI"], rows)
    if args.json:
        saved = {"command": args.cmd, "levels": results}
        pathlib.Path(args.json).write_text(json.dumps(saved, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
