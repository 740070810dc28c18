"""A long API fuzz of the Flock manager over two real engines (the CI test,
tests/integration/test_api_fuzz.py, runs a short derandomized one). Rounds over every
fuzzed operation of the Engine API v1.41 spec, a new random seed each round, until the
time is up; then prints the figures: requests sent, responses by status class, 5xx by
cause (relayed from the engine or the manager's own), 501s, spec violations, hangs, and
one line per distinct finding. Needs root (it starts its own dockerd engines).

    python bench/api_fuzz.py [--minutes 10] [--examples 25] [--seed 1]
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests.support.api_fuzz import Fuzzer, cleanup, snapshot  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402
from tests.support.engines import start_engine  # noqa: E402

NODES = ("node-a", "node-b")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--examples", type=int, default=25, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=1, help="of the first round")
    parser.add_argument("--timeout", type=float, default=30, help="per request, seconds")
    parser.add_argument("--verbose", action="store_true", help="a line per operation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flock-fuzz-") as tmp:
        root = pathlib.Path(tmp)
        engines = [start_engine(root / "engine-a", bridge=True)]
        try:
            engines.append(start_engine(root / "engine-b", bridge=False))
            for engine in engines:
                engine.import_busybox()
            cluster = Cluster(engines, root, list(NODES))
            try:
                return fuzz(cluster, engines, args)
            finally:
                cluster.close()
        finally:
            for engine in engines:
                engine.stop()


def fuzz(cluster: Cluster, engines, args) -> int:
    urls = [e.url for e in engines]
    before = snapshot(urls)
    fuzzer = Fuzzer(cluster.port, [e.socket for e in engines], NODES,
                    lambda i: engines[i].import_busybox(), timeout=args.timeout,
                    log=(lambda line: print(line, flush=True)) if args.verbose else None)
    started = time.monotonic()
    deadline = started + args.minutes * 60
    rounds, seed = 0, args.seed
    try:
        while time.monotonic() < deadline:
            fuzzer.run(args.examples, derandomize=False, seed=seed, deadline=deadline)
            if time.monotonic() < deadline:  # a round the deadline cut is not counted
                rounds += 1
                print(f"round {rounds} (seed {seed}) done: {fuzzer.figures.requests} "
                      f"requests, {len(fuzzer.figures.findings)} findings", flush=True)
            seed = random.Random(seed).randrange(1 << 30)
    finally:
        cleanup(urls, before)
    elapsed = time.monotonic() - started
    print(f"\n{elapsed / 60:.1f} min, {rounds} full rounds (+1 partial), "
          f"{args.examples} examples per operation and mode, first seed {args.seed}")
    print("\n".join(fuzzer.figures.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
