"""Pull time of a ~50 MB image from a local registry: the exec runtime against dockerd,
side by side, interleaved so machine noise hits both alike.

The image is one layer of 50 MB of random bytes (gzip cannot shrink it), made with
`docker import` and pushed by a real dockerd to Debian's docker-registry on loopback.
Each run starts from nothing on both sides: the exec runtime gets a fresh state folder,
dockerd removes the image (and so its layer) first. Needs root.

    python bench/exec_pull.py [--runs 5] [--mb 50]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from flock.common.table import print_table  # noqa: E402
from tests.support.engines import start_engine  # noqa: E402
from tests.support.exec_runtime import RuntimeProcess  # noqa: E402
from tests.support.oci_images import tar_of  # noqa: E402
from tests.support.registry import start_registry  # noqa: E402


def random_rootfs_tar(megabytes: int) -> bytes:
    return tar_of({"payload": os.urandom(megabytes * 1_000_000)})


def timed_pull(url: str, ref: str) -> float:
    start = time.perf_counter()
    subprocess.run(["docker", "-H", url, "pull", ref], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="flock-bench-pull-"))
    engine = start_engine(work / "engine", bridge=False)
    registry = start_registry(work / "registry")
    try:
        ref = registry.ref(f"big:{args.mb}mb")
        engine.docker("import", "-", ref, input=random_rootfs_tar(args.mb))
        engine.docker("push", ref)
        engine.docker("rmi", ref)
        times: dict[str, list[float]] = {"exec": [], "dockerd": []}
        for run in range(args.runs):
            state = work / f"exec-{run}"
            state.mkdir()
            runtime = RuntimeProcess(state)
            runtime.start()
            try:
                times["exec"].append(timed_pull(runtime.url, ref))
            finally:
                runtime.stop()
                shutil.rmtree(state, ignore_errors=True)
            times["dockerd"].append(timed_pull(engine.url, ref))
            engine.docker("rmi", ref)
        rows = [[side, f"{statistics.median(t):.2f}", f"{min(t):.2f}", f"{max(t):.2f}",
                 f"{args.mb / statistics.median(t):.0f}"] for side, t in times.items()]
        print(f"docker pull of a {args.mb} MB one-layer image from a loopback registry, "
              f"{args.runs} runs each")
        print_table(["RUNTIME", "MEDIAN s", "MIN s", "MAX s", "MB/s"], rows)
        ratio = statistics.median(times["exec"]) / statistics.median(times["dockerd"])
        print(f"exec / dockerd: {ratio:.2f}x")
    finally:
        registry.stop()
        engine.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
