"""The whole Engine API v1.41 spec, fuzzed against a manager over two real engines.

schemathesis draws cases for every operation (valid ones, and invalid ones where that
is safe; for JSON bodies also valid ones with one field of another type) from
tests/data/docker-api-v1.41.yaml, derandomized so that CI sees the same cases every run,
FUZZ_EXAMPLES per operation and mode. Each goes to the manager; an
answer that looks wrong is sent again straight to both engines, and it fails the test
only if the engines show it is the manager's doing (tests/support/fuzz_verdict.py):
- a 5xx (but 501) that no engine answers with the same status and message (the
  manager's own, not the engine's relayed as is);
- a 501 for an operation the engines do;
- a spec violation (failed response-schema or content-type check, keyed by schema path)
  that no engine answering with the same status has too;
- no full answer within the per-request timeout where an engine answers in time.

Allowances (intended or harmless, tolerated when comparing): `node/` in front of
names and references (the request sent to an engine has them taken out), a `<node>: `
prefix on errors of a fan-out (`node-a: X; node-b: X` is relayed if each part is), IDs
(which differ between engines), `Content-Type: application/octet-stream` on a streamed
answer where the engine sends none (aiohttp's default), and any typed value may be null
(the spec marks few fields x-nullable; the engines answer null for unset lists, maps).
A 500 "Unable to find a node that satisfies..." is the scheduler's refusal with classic
Swarm's status (a fuzzed port binding or rule may fit no node), not a failure.

Not fuzzed, and why (tests/support/fuzz_scope.py has the tables):
- attach (hijack held open), attach/ws (WebSocket), /session (BuildKit's h2c);
- /auth, image push, image search, /distribution: they reach a registry the input names,
  any host, and there is no network here;
- swarm mode and plugins (/swarm, /services, /tasks, /nodes, /secrets, /configs,
  /plugins): the manager answers 501 by design (test_docker_api_bad_input checks it) and
  the engines are not in swarm mode.
Narrowed: logs without follow, stats with stream=false&one-shot, wait only on containers
that are not running and with condition=not-running, events with an `until` in the past,
exec start detached, stop/restart with t <= 2 s, kill with a list of signals,
images/create as an import of the body (fromSrc=-, never a pull), build without
`remote`; these (and images/create, build) get valid values only. No body names a
volume, network, IPAM or logging driver (dockerd looks a plugin up for 15 s). Path
parameters name objects seeded first (containers running, exited and created, an exec,
a network, a volume, an image tag; by name, node/name, ID and ID prefix) or nothing,
so that cases reach deep paths; seeds are made again when a case removed them.
"""

from __future__ import annotations

import os

import pytest

from tests.support.api_fuzz import Fuzzer, cleanup, snapshot

pytestmark = pytest.mark.docker
NODES = ("node-a", "node-b")
# Cases per operation and mode (about 700 requests, 1.5 min here); bench/api_fuzz.py runs
# longer, randomized fuzzes.
FUZZ_EXAMPLES = int(os.environ.get("FLOCK_FUZZ_EXAMPLES", "8"))


CLUSTER = dict(names=NODES)  # the shared `cluster` fixture (tests/integration/conftest.py)


@pytest.mark.timeout(300)
def test_the_manager_answers_the_fuzzed_api_as_its_engines_do(engine_pair, cluster):
    urls = [engine.url for engine in engine_pair]
    before = snapshot(urls)
    fuzzer = Fuzzer(cluster.port, [engine.socket for engine in engine_pair], NODES,
                    lambda index: engine_pair[index].import_busybox(), timeout=20)
    try:
        figures = fuzzer.run(FUZZ_EXAMPLES, derandomize=True)
    finally:
        cleanup(urls, before)
        for engine in engine_pair:  # later tests of the session need it
            if engine.docker("image", "inspect", "busybox", check=False).returncode:
                engine.import_busybox()
    print("\n".join(figures.summary()))  # the run's figures, shown with -rP
    assert len(figures.operations) >= 55, sorted(figures.operations)
    assert not figures.findings, "\n".join(figures.summary())
