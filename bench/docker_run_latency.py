"""`docker run -d` latency through the Flock manager against straight to the engine.

Same engine, same run, interleaved so that machine noise hits both sides alike. Two
levels are measured: the real docker CLI (`docker run -d busybox true`, process start
included, which is what a user feels) and the Docker SDK (create + start, the API cost
alone). Prints a table and the ratios. Needs root (it starts its own dockerd).

    python bench/docker_run_latency.py [--runs 30]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from flock.common.table import print_table  # noqa: E402
from flock.local_cluster import LocalCluster  # noqa: E402
from tests.support.engines import start_engine  # noqa: E402


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def cli_run(url: str) -> None:
    subprocess.run(["docker", "-H", url, "run", "-d", "busybox", "true"],
                   check=True, capture_output=True)


def sdk_run(client: docker.DockerClient) -> None:
    container = client.api.create_container("busybox", ["true"])
    client.api.start(container["Id"])


def summary(label: str, values: list[float]) -> list[str]:
    values = sorted(values)
    p90 = values[int(len(values) * 0.9) - 1]
    median, mean = statistics.median(values), statistics.mean(values)
    return [label, f"{median:.1f}", f"{p90:.1f}", f"{mean:.1f}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flock-bench-") as tmp:
        engine = start_engine(pathlib.Path(tmp) / "engine")
        try:
            engine.import_busybox()
            with LocalCluster(agents=1, runtime="docker", docker_host=engine.url) as cluster:
                results = measure(engine.url, cluster.url, args.runs)
        finally:
            engine.stop()
    rows = [summary(label, values) for label, values in results.items()]
    print_table(["PATH", "MEDIAN ms", "P90 ms", "MEAN ms"], rows)
    cli = statistics.median(results["cli via flock"]) / statistics.median(results["cli direct"])
    sdk = statistics.median(results["sdk via flock"]) / statistics.median(results["sdk direct"])
    print(f"\nratio flock/direct (median): docker CLI {cli:.3f}, SDK create+start {sdk:.3f}")
    return 0


def measure(engine_url: str, manager_url: str, runs: int) -> dict[str, list[float]]:
    direct = docker.DockerClient(base_url=engine_url)
    through = docker.DockerClient(base_url=manager_url.replace("tcp://", "http://"))
    results: dict[str, list[float]] = {
        "cli direct": [], "cli via flock": [], "sdk direct": [], "sdk via flock": [],
    }
    for _ in range(3):  # warm up both paths
        cli_run(engine_url)
        cli_run(manager_url)
    for _ in range(runs):
        results["cli direct"].append(timed(lambda: cli_run(engine_url)))
        results["cli via flock"].append(timed(lambda: cli_run(manager_url)))
        results["sdk direct"].append(timed(lambda: sdk_run(direct)))
        results["sdk via flock"].append(timed(lambda: sdk_run(through)))
    direct.api.prune_containers()
    return results


if __name__ == "__main__":
    raise SystemExit(main())
