"""The manager's memory around large request bodies: a manager and two agents as real
processes over two real engines, then rounds of 10 MB uploads through the manager;
prints the manager's resident memory (VmRSS) idle, after each round (one upload at a
time, then several at once) and after a pause, and each round's time. Streamed bodies
go to the agents in chunks, so the manager should end near where it started whatever
the sizes. Needs root (it starts
its own dockerd engines).

    python bench/large_bodies.py [--count 10] [--mb 10]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests.support import rawhttp  # noqa: E402
from tests.support.engines import start_engine  # noqa: E402
from tests.support.oci_images import tar_of  # noqa: E402
from tests.support.procs import Manager, Proc, free_port, wait_for  # noqa: E402

NODES = ("node-a", "node-b")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def rounds(size: int) -> list[tuple[str, str, str, bytes]]:
    """(what, method, path, body): a whole build context read by the engine, an import
    fanned out to both nodes, and a build the engine refuses after a few KB."""
    blob = os.urandom(size)
    context = tar_of({"Dockerfile": b"FROM busybox\nLABEL flock.bench=large-bodies\n",
                      "blob": blob})
    return [
        ("build (context read whole)", "POST", "/v1.41/build?t=flock-bench:build", context),
        ("import on every node", "POST",
         "/v1.41/images/create?fromSrc=-&repo=flock-bench&tag=import", tar_of({"blob": blob})),
        ("build refused early", "POST", "/v1.41/build", blob),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10, help="uploads per round")
    parser.add_argument("--mb", type=int, default=10, help="size of each upload, MiB")
    parser.add_argument("--parallel", type=int, default=10,
                        help="uploads in flight at once in the second pass")
    parser.add_argument("--settle", type=float, default=5, help="pause before the last "
                                                                  "figure, seconds")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flock-bodies-") as tmp:
        root = pathlib.Path(tmp)
        engines = [start_engine(root / "engine-a", bridge=False)]
        procs: list[Proc] = []
        try:
            engines.append(start_engine(root / "engine-b", bridge=False))
            addrs = []
            for engine, name in zip(engines, NODES, strict=True):
                engine.import_busybox()
                addr = f"127.0.0.1:{free_port()}"
                addrs.append(addr)
                procs.append(Proc(name, [
                    "join", "--advertise", addr, "--runtime", "docker", "--docker-host",
                    engine.url, "--name", name, "--state-dir", str(root / name)], root).start())
            manager = Manager("manager", root, "nodes://" + ",".join(addrs))
            procs.append(manager.start())
            wait_for(lambda: list(manager.nodes().values()).count("Healthy") == len(NODES), 60,
                     "both nodes healthy")
            return measure(manager, args)
        finally:
            for proc in procs:
                proc.stop()
            for engine in engines:
                engine.stop()


def measure(manager: Manager, args) -> int:
    pid = manager.proc.pid
    address = ("127.0.0.1", manager.port)
    for _ in range(20):  # warm the code paths the rounds use with small bodies
        rawhttp.request(address, "POST", "/v1.41/build", b"x" * 1024)
    idle = rss_mib(pid)
    print(f"manager RSS idle: {idle:.1f} MiB; {args.count} uploads of {args.mb} MiB per round")
    for parallel in (1, args.parallel):
        print(f" {parallel} at a time")
        for what, method, path, body in rounds(args.mb << 20):
            started = time.monotonic()
            with ThreadPoolExecutor(parallel) as pool:
                answers = [pool.submit(rawhttp.request, address, method, path, body,
                                       timeout=300) for _ in range(args.count)]
                statuses = {answer.result().status for answer in answers}
            took = time.monotonic() - started
            print(f"  {what:28} {took:6.1f} s  ({args.count * args.mb / took:6.1f} MiB/s)  "
                  f"statuses {sorted(statuses)}  RSS {rss_mib(pid):6.1f} MiB")
    time.sleep(args.settle)
    final = rss_mib(pid)
    print(f"manager RSS {args.settle:g} s later: {final:.1f} MiB ({final - idle:+.1f} MiB "
          "against idle)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
