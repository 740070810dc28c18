"""What a client's pathological pattern costs now that rules and filters run on RE2
(issue 16, item 2).

For each nested-quantifier classic (`.*(a+)+b` and friends, and a many-star glob, all
without a match in a run of `a`s), against names of 26, 1,000 and 100,000 `a`s:
- RE2 through the real code paths: a rule's match (`parse_rule(...).matches`, whole
  string, as the affinity and constraint filters call it) and a `docker ps` name filter
  value (`filter_matches`, unanchored search), in microseconds per match (median);
- for contrast, Python's `re` (what they ran on before), only for names of up to 22
  characters, each run in a child process stopped after --guard seconds, so that the
  benchmark always ends.
Then the everyday costs: compiling a rule, and `docker ps --filter name=...` over 10,000
containers from memory, with a plain and a pathological value.

    PYTHONPATH=. python bench/rule_regex.py [--guard 5]
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import statistics
import time

from flock.docker_compat.regexp import filter_matches
from flock.manager.api.docker import ps
from flock.manager.api.docker.ps import select_containers
from flock.manager.cluster.model import Container, Node
from flock.manager.scheduler.rules import _glob_to_regex, parse_rule

PATTERNS = [".*(a+)+b", "(a+)+b", "(a|aa)+b", "(a|a?)+b", "(a*)*b", "(.*a){12}b"]
GLOB = "a*a*a*a*a*b"  # a glob rule: `a.*a.*a.*a.*a.*b`, polynomial when backtracking
RE2_SIZES = [26, 1_000, 100_000]
PY_SIZES = [16, 18, 20, 22]


def per_call(fn, budget: float = 0.2) -> float:
    """Median seconds per call of `fn`, over batches filling about `budget` seconds."""
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    batch = max(1, min(10_000, int(budget / 5 / once)))
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - start) / batch)
    return statistics.median(samples)


def micro(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs" if seconds < 0.1 else f"{seconds:,.2f} s"


def re2_table() -> None:
    print("RE2 (the code paths the manager runs), per match, median:")
    print(f"  {'pattern':<14} {'path':<12}" + "".join(f"{n:>16,}" for n in RE2_SIZES))
    for pattern in [*PATTERNS, GLOB]:
        text = pattern if pattern == GLOB else f"/{pattern}/"
        rule = parse_rule(f"container=={text}", "affinity")
        rows = [("rule", lambda name, r=rule: r.matches(name))]
        if pattern != GLOB:
            rows.append(("ps name=", lambda name, p=pattern: filter_matches(p, "/" + name)))
        for path, fn in rows:
            cells = []
            for size in RE2_SIZES:
                name = "a" * size
                assert not fn(name)
                cells.append(micro(per_call(lambda f=fn, n=name: f(n))))
            print(f"  {pattern:<14} {path:<12}" + "".join(f"{c:>16}" for c in cells))


def _python_re(pattern: str, size: int, answer) -> None:
    compiled = re.compile(pattern, re.DOTALL)
    name = "a" * size
    start = time.perf_counter()
    compiled.fullmatch(name)
    answer.send(time.perf_counter() - start)


def python_re_table(guard: float) -> None:
    print(f"\nPython re (before), one whole-string match, stopped after {guard:g} s:")
    print(f"  {'pattern':<14}" + "".join(f"{n:>12}" for n in PY_SIZES) + "   26 and up")
    context = multiprocessing.get_context("fork")
    for pattern in [*PATTERNS, GLOB]:
        regex = _glob_to_regex(pattern) if pattern == GLOB else pattern
        cells = []
        stopped = False
        for size in PY_SIZES:
            if stopped:
                cells.append("-")
                continue
            receive, send = context.Pipe(duplex=False)
            child = context.Process(target=_python_re, args=(regex, size, send))
            child.start()
            if receive.poll(guard):
                cells.append(micro(receive.recv()))
            else:
                cells.append(f">{guard:g} s")
                stopped = True
            child.kill()
            child.join()
        print(f"  {pattern:<14}" + "".join(f"{c:>12}" for c in cells) + "   not tried")


def everyday() -> None:
    print("\nEveryday costs:")
    compile_cost = per_call(lambda: parse_rule("node==/node-[0-9]+/"))
    print(f"  parse_rule('node==/node-[0-9]+/') (RE2 compile):      {micro(compile_cost)}")
    compile_py = per_call(lambda: (re.purge(), re.compile("node-[0-9]+")))
    print(f"  re.compile('node-[0-9]+') uncached (before):          {micro(compile_py)}")
    nodes = {f"n{i}": Node(id=f"n{i}", name=f"node-{i}", addr=f"10.0.{i}.1:4000")
             for i in range(100)}
    containers = [Container(id=f"{i:064x}", name=f"web-{i}", node_id=f"n{i % 100}",
                            state="running", created=i, labels={}, summary={},
                            image="busybox", image_id="sha256:" + "ab" * 32)
                  for i in range(10_000)]
    containers.append(Container(id="f" * 64, name="a" * 1_000, node_id="n0",
                                state="running", created=0, labels={}, summary={},
                                image="busybox", image_id="sha256:" + "ab" * 32))
    for value, before in [("web-12", True), ("web-12$", True), ("(a+)+b", False)]:
        def listing(v=value):
            return select_containers(containers, nodes, show_all=True, limit=-1,
                                     filters={"name": [v]})
        cost = per_call(listing, budget=1.0)
        line = (f"  docker ps --filter name={value!r:<10} over 10,001 containers: "
                f"{cost * 1e3:,.1f} ms ({len(listing())} listed)")
        if before:
            now, ps._search = ps._search, _search_before
            try:
                line += f"; before (Python re): {per_call(listing, budget=1.0) * 1e3:,.1f} ms"
            finally:
                ps._search = now
        print(line)


def _search_before(patterns, text: str) -> bool:
    """manager/api/docker/ps.py's _search before issue 16 (never given `(a+)+b` here)."""
    for pattern in patterns:
        try:
            if re.search(pattern, text):
                return True
        except re.error:
            if pattern in text:
                return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guard", type=float, default=5.0,
                        help="seconds before a Python re match is stopped")
    args = parser.parse_args()
    re2_table()
    python_re_table(args.guard)
    everyday()


if __name__ == "__main__":
    main()
