"""What storage and health checks cost on the exec runtime (needs root): the median time
of `create` + `start` + `wait` of a container without mounts and with a bind, a named
volume and a tmpfs (the SDK on the runtime's socket), and of one health probe (from its
Log: Start to End, the `docker exec` path into the container's namespaces).

    python bench/exec_storage.py [--runs 20]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time

import docker

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.exec_timing import busybox_runtime, create_start_wait  # noqa: E402
from flock.agent.runtimes.exec.timefmt import parse_rfc3339nano  # noqa: E402


def probe_times(client: docker.DockerClient, count: int) -> list[float]:
    container = client.containers.run(
        "busybox", ["sleep", "600"], detach=True,
        healthcheck={"Test": ["CMD-SHELL", "true"], "Interval": 200_000_000})
    try:
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while len(seen) < count and time.monotonic() < deadline:
            container.reload()
            for entry in (container.attrs["State"].get("Health") or {}).get("Log") or []:
                seen[entry["Start"]] = (parse_rfc3339nano(entry["End"])
                                        - parse_rfc3339nano(entry["Start"])) / 1e9
            time.sleep(0.2)
        return list(seen.values())[:count]
    finally:
        container.remove(force=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flock-exec-storage-") as tmp:
        with busybox_runtime(pathlib.Path(tmp)) as (_, client):
            host = pathlib.Path(tmp) / "bind"
            host.mkdir()
            client.volumes.create("bench")
            cases = {
                "no mounts": {},
                "bind + volume + tmpfs": {"volumes": {str(host): {"bind": "/b"},
                                                      "bench": {"bind": "/v"}},
                                          "tmpfs": {"/t": "size=1m"}},
                "read-only root": {"read_only": True},
            }
            print(f"exec runtime, {args.runs} runs each, median create+start+wait:")
            for label, options in cases.items():
                times = [create_start_wait(client, **options) for _ in range(args.runs)]
                print(f"  {label:24s} {statistics.median(times) * 1000:7.1f} ms")
            probes = probe_times(client, min(args.runs, 15))
            print(f"health probe (Start->End), median of {len(probes)}: "
                  f"{statistics.median(probes) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
