"""A container name is one cluster-wide, however many requests race for it: creates,
`docker run`'s create+start, renames and ClusterService Runs, 80 in flight at once on
a manager over two real engines, round after round; the engines themselves are asked
how many containers hold each name. Also: a client that hangs up mid-create does not
free the name while its node still makes the container, and names two containers share
anyway (made directly on the engines) stay reachable as NODE/NAME."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import socket
import urllib.request
import uuid
from collections import Counter

import aiohttp
import grpc
import pytest

from flock.protos import cluster_pb2 as pb
from flock.protos import cluster_pb2_grpc
from tests.support.cluster import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

ROUNDS = int(os.environ.get("FLOCK_NAME_ROUNDS", "10"))
NAMES = 8  # names fought over per round
CREATES, RUNS, RENAMES, GRPC_RUNS = 40, 16, 16, 8  # 80 requests in flight per round
BODY = {"Image": "busybox", "Cmd": ["sleep", "600"]}
# moby daemon/errors.go (nameConflictError): the Engine's own words for a taken name.
CONFLICT = re.compile(r'^Conflict\. The container name "/[\w.-]+" is already in use by ')


# The shared `cluster` fixture (tests/integration/conftest.py): node-a and node-b, and a
# ClusterService on TCP.
CLUSTER = dict(manager_options={"grpc_addr": "127.0.0.1:0"})


@pytest.fixture
def clean(cluster):
    """Whatever a test made on either engine goes afterwards, and the manager forgets it."""
    before = cluster.container_ids()
    yield
    cluster.remove_new_containers(before)


def names_on_engines(cluster) -> Counter:
    """Container name -> how many containers hold it, over both engines (their own
    listings, not the manager's)."""
    held: Counter = Counter()
    for engine in cluster.engines:
        out = engine.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode()
        held.update(out.split())
    return held


# ------------------------------------------------------------------ the race
async def _late_body(delay: float):
    """The body a moment after the headers, as over any real network: the manager has
    checked the name by then, and has to await the body before it can place."""
    await asyncio.sleep(delay)
    yield json.dumps(BODY).encode()


async def _create(http: aiohttp.ClientSession, base: str, name: str,
                  start: bool) -> tuple[int, str]:
    async with http.post(f"{base}/containers/create", params={"name": name},
                         data=_late_body(random.uniform(0, 0.05)),
                         headers={"Content-Type": "application/json"}) as answer:
        status, data = answer.status, await answer.json()
    if status != 201:
        return status, data.get("message", "")
    if start:
        async with http.post(f"{base}/containers/{data['Id']}/start") as answer:
            assert answer.status == 204, await answer.text()
    return status, ""


async def _rename(http: aiohttp.ClientSession, base: str, source: str,
                  name: str) -> tuple[int, str]:
    async with http.post(f"{base}/containers/{source}/rename", params={"name": name}) as answer:
        if answer.status == 204:
            return 204, ""
        return answer.status, (await answer.json()).get("message", "")


async def _grpc_run(stub, name: str) -> tuple[int, str]:
    spec = pb.ContainerSpec(image="busybox", cmd=["sleep", "600"], name=name)
    try:
        await stub.Run(pb.RunRequest(spec=spec), timeout=60)
    except grpc.aio.AioRpcError as err:
        status = 409 if err.code() == grpc.StatusCode.ALREADY_EXISTS else 500
        return status, err.details() or ""
    return 201, ""


async def _burst(cluster, plan: list[tuple[str, str, str]]) -> list[tuple[int, str]]:
    """Every request of `plan` ((kind, name, rename source)) in flight at once."""
    base = f"http://127.0.0.1:{cluster.port}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http, \
            grpc.aio.insecure_channel(cluster.grpc_addr) as channel:
        stub = cluster_pb2_grpc.ClusterServiceStub(channel)
        go = asyncio.Event()

        async def one(kind: str, name: str, source: str) -> tuple[int, str]:
            await go.wait()
            if kind == "rename":
                return await _rename(http, base, source, name)
            if kind == "grpc":
                return await _grpc_run(stub, name)
            return await _create(http, base, name, start=kind == "run")

        tasks = [asyncio.ensure_future(one(*step)) for step in plan]
        await asyncio.sleep(0.2)
        go.set()
        return await asyncio.gather(*tasks)


def _plan(rng: random.Random, names: list[str], sources: list[str]
          ) -> list[tuple[str, str, str]]:
    kinds = ["create"] * CREATES + ["run"] * RUNS + ["grpc"] * GRPC_RUNS
    plan = [(kind, names[i % len(names)], "") for i, kind in enumerate(kinds)]
    plan += [("rename", rng.choice(names), source) for source in sources]
    rng.shuffle(plan)
    return plan


def _round(cluster, rng: random.Random, number: int) -> None:
    tag = f"{number}-{uuid.uuid4().hex[:4]}"
    names = [f"race-{tag}-{i}" for i in range(NAMES)]
    sources = [f"src-{tag}-{i}" for i in range(RENAMES)]
    for source in sources:  # spread over both nodes by the strategy
        cluster.docker("create", "--name", source, "busybox", "sleep", "600")
    plan = _plan(rng, names, sources)
    answers = asyncio.run(_burst(cluster, plan))

    wins: Counter = Counter()
    renamed = set()
    refusals = []
    for (kind, name, source), (status, message) in zip(plan, answers, strict=True):
        if status in (201, 204):
            wins[name] += 1
            renamed.add(source)
        else:
            refusals.append((kind, status, message))

    held = names_on_engines(cluster)
    assert {name: held[name] for name in names} == dict.fromkeys(names, 1), number
    assert all(wins[name] == 1 for name in names), (number, wins)
    for kind, status, message in refusals:
        assert status == 409 and CONFLICT.match(message), (kind, status, message)
    for source in sources:  # a rename refused leaves its container as it was
        assert held[source] == (0 if source in renamed else 1), source
    # The manager agrees, and NODE/NAME reaches the one container.
    for name in names:
        status, found, _ = cluster.api("GET", f"/containers/{name}/json")
        assert status == 200, found
        node = found["Node"]["Name"]
        status, again, _ = cluster.api("GET", f"/containers/{node}/{name}/json")
        assert status == 200 and again["Id"] == found["Id"]


def test_concurrent_creates_runs_and_renames_leave_one_container_per_name(cluster, clean):
    seed = int(os.environ.get("FLOCK_NAME_SEED", "16"))
    rng = random.Random(seed)
    for number in range(ROUNDS):
        before = cluster.container_ids()
        _round(cluster, rng, number)
        cluster.remove_new_containers(before)
    print(f"name race: {ROUNDS} rounds x {CREATES + RUNS + RENAMES + GRPC_RUNS} requests "
          f"over {NAMES} names (seed {seed}): one container per name every round")


# ------------------------------------------------------------------ a client that hangs up
def _metric(cluster, pattern: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.findall(pattern, text, re.M)
    return sum(float(value) for value in found)


HUNG_UP = r'^flock_api_requests_total\{[^}]*code="499"[^}]*\} (\S+)$'


def test_a_client_that_hangs_up_mid_create_keeps_the_name_claimed_until_the_node_answers(
        cluster, clean):
    """The manager cancels the handler of a client that is gone (handler cancellation),
    but the node makes the container anyway: the claim must last until it has."""
    name = f"hangup-{uuid.uuid4().hex[:6]}"
    engine_a = cluster.engines[0]
    hung_up = _metric(cluster, HUNG_UP)
    body = b'{"Image": "busybox", "Env": ["constraint:node==node-a"]}'
    request = (f"POST /containers/create?name={name} HTTP/1.1\r\nHost: x\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    os.kill(engine_a.proc.pid, signal.SIGSTOP)  # node-a's engine takes its time
    try:
        with socket.create_connection(("127.0.0.1", cluster.port)) as client:
            client.sendall(request)
            wait_for(lambda: cluster.manager.state.name_taken(name), what="the claim")
        wait_for(lambda: _metric(cluster, HUNG_UP) > hung_up, what="the handler's cancel")
        status, answer, _ = cluster.api(
            "POST", f"/containers/create?name={name}",
            b'{"Image": "busybox", "Env": ["constraint:node==node-b"]}',
            {"Content-Type": "application/json"})
        assert status == 409, answer
        assert "by a container being created" in answer["message"]
    finally:
        os.kill(engine_a.proc.pid, signal.SIGCONT)
    wait_for(lambda: cluster.manager.state.container_names().get(name), 30, "the record")
    assert names_on_engines(cluster)[name] == 1
    assert cluster.node_of(name) == "node-a"


# ------------------------------------------------------------------ made behind its back
def test_a_name_two_engines_hold_is_reached_per_node_and_survives_a_removal(cluster, clean):
    """Classic Swarm answers a shared name with neither container (cluster/container.go,
    Containers.Get); NODE/NAME picks one. Removing one leaves the other reachable."""
    name = f"twice-{uuid.uuid4().hex[:6]}"
    ids = [engine.docker("create", "--name", name, "busybox", "sleep", "600")
           .stdout.decode().strip() for engine in cluster.engines]
    state = cluster.manager.state
    wait_for(lambda: all(state.container(cid) for cid in ids), what="both records")
    status, answer, _ = cluster.api("GET", f"/containers/{name}/json")
    assert status == 404 and "More than one container is named" in answer["message"]
    for node, cid in zip(("node-a", "node-b"), ids, strict=True):
        assert cluster.docker("inspect", "-f", "{{.Id}}", f"{node}/{name}").stdout.decode(
            ).strip() == cid
    cluster.docker("rm", f"node-a/{name}")
    wait_for(lambda: state.container(ids[0]) is None, what="the removal")
    for ref in (name, f"node-b/{name}"):
        assert cluster.docker("inspect", "-f", "{{.Id}}", ref).stdout.decode().strip() == ids[1]
    listed = cluster.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode().split()
    assert f"node-b/{name}" in listed and f"node-a/{name}" not in listed
