"""The manager re-reads a container once per burst of its own changes, and at once for
changes made by others (manager/cluster/sync.py, refresh_soon).

A `docker run` through the manager is a create and a start, each answered and each
echoed by an event; reading the container back after each of the four cost two agent
calls apiece on the path of every run. Containers changed behind the manager's back
(another manager, the engine's own CLI) must still show up promptly. A real hollow agent
on loopback, a real NodeWatcher over nodes:// discovery; the agent calls are counted by
the AgentClient's own RPC observer."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest

from flock import discovery
from flock.agent.runtimes.hollow.service import HollowAgentService
from flock.manager.cluster.agent_client import AgentClient
from flock.manager.cluster.records import after_action, created_record
from flock.manager.cluster.state import ClusterState
from flock.manager.cluster.sync import NodeWatcher
from tests.support.served_agent import served_agent

pytestmark = pytest.mark.timeout(60)
DELAY = 3.0  # long enough to tell "after the burst" from "at once" on a busy machine
BODY = {"Image": "busybox", "Cmd": ["sleep", "1d"]}


async def _scenario(check) -> None:
    """`check(state, watcher, node_id, direct, calls)`: `direct` is a client of the agent
    of its own, whose calls `calls` (the watcher's) does not count."""
    async with served_agent(HollowAgentService, "burst") as agent:
        calls: Counter = Counter()
        state = ClusterState()
        watcher = NodeWatcher(
            state, discovery.open_backend(f"nodes://{agent.addr}"), heartbeat=30,
            client_factory=lambda a: AgentClient(
                a, observer=lambda method, seconds, ok: calls.update([method])))
        watcher.records.refresh_delay = DELAY
        try:
            await watcher.start()
            node = state.healthy_nodes()[0]
            await check(state, watcher, node.id, agent.client, calls)
        finally:
            await watcher.stop()


async def _until(predicate, timeout: float) -> float:
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - began


def test_own_create_and_start_make_one_read_after_the_burst():
    async def check(state, watcher, node_id, direct, calls):
        client = watcher.clients.get(node_id)
        # As the create path (manager/placement/create.py) does: the name is held while
        # the create is in flight (its event may come before its answer), the record
        # written on the 201.
        token = state.reserve(node_id, "mine", 0, 0)
        status, answer = await client.request_json("POST", "/containers/create", "name=mine",
                                                   BODY)
        assert status == 201
        record = created_record(node_id, answer["Id"], "mine", BODY, 2)
        watcher.records.write(record)
        watcher.records.refresh_soon(node_id, record.id)
        state.release(token)
        assert (await client.request_json("POST", f"/containers/{record.id}/start"))[0] == 204
        watcher.records.write(after_action(record, "start"))
        watcher.records.refresh_soon(node_id, record.id)
        before = calls["DockerCall"]
        await asyncio.sleep(DELAY / 2)  # the create and start events are in by now
        assert calls["DockerCall"] == before  # nothing read yet: the burst is waited for
        await _until(lambda: calls["DockerCall"] == before + 2, DELAY * 3)  # inspect + list
        await asyncio.sleep(1)
        assert calls["DockerCall"] == before + 2  # once for the whole burst
        container = state.container(record.id)
        assert container.state == "running" and container.image_id.startswith("sha256:")

    asyncio.run(_scenario(check))


def test_changes_made_by_others_are_read_at_once():
    async def check(state, watcher, node_id, direct, calls):
        status, answer = await direct.request_json("POST", "/containers/create",
                                                   "name=theirs", BODY)
        assert status == 201
        took = await _until(lambda: state.container(answer["Id"]) is not None, DELAY * 3)
        assert took < DELAY / 2, took
        assert (await direct.request_json("POST", f"/containers/{answer['Id']}/start"))[0] \
            == 204
        took = await _until(lambda: state.container(answer["Id"]).state == "running",
                            DELAY * 3)
        assert took < DELAY / 2, took
        # Removed behind the manager's back: dropped on the destroy event, and the events
        # of the removal do not make reads of a container that is gone.
        before = calls["DockerCall"]
        status, _ = await direct.request_json("DELETE", f"/containers/{answer['Id']}",
                                              "force=1")
        assert status == 204
        await _until(lambda: state.container(answer["Id"]) is None, DELAY)
        await asyncio.sleep(0.5)
        assert calls["DockerCall"] - before <= 2, calls  # at most one read raced the destroy

    asyncio.run(_scenario(check))


def test_a_run_read_back_by_the_agent_makes_no_further_reads():
    """As the create path (manager/placement/create.py) runs a container: both changes
    ask the agent to read the container back, so a whole `docker run` is two agent
    calls, and the events it causes (which may arrive before the answers) make no reads
    of their own."""
    async def check(state, watcher, node_id, direct, calls):
        client = watcher.clients.get(node_id)
        before = calls["DockerCall"]
        with watcher.records.changing(node_id):
            created = await client.request(
                "POST", "/containers/create", "", [("Content-Type", "application/json")],
                json.dumps(BODY).encode(), read_back=True)
            await created.body()
        record = watcher.records.take_read_back(node_id, created.read_back)
        assert record is not None and record.state == "created"
        with watcher.records.changing(node_id, record.id):
            started = await client.request("POST", f"/containers/{record.id}/start",
                                           read_back=True)
            await started.body()
        assert watcher.records.change(node_id, record, "start", started.read_back)
        running = state.container(record.id)
        assert running.state == "running" and running.image_id.startswith("sha256:")
        assert running.summary["Names"] == [f"/{running.name}"]  # the engine's list entry
        await asyncio.sleep(DELAY * 1.5)  # past the wait for a burst: nothing was read
        assert calls["DockerCall"] == before + 2, calls

        # A change made behind the manager's back is still read at once.
        assert (await direct.request_json("POST", f"/containers/{record.id}/stop",
                                          "t=0"))[0] == 204
        took = await _until(lambda: state.container(record.id).state == "exited", DELAY * 3)
        assert took < DELAY / 2, took

    asyncio.run(_scenario(check))


def test_an_older_read_back_that_comes_later_leaves_the_newer_record():
    """Read-backs sent after the answer travel on the event stream, apart from the
    answers (agent/later_reads.py): the create's read may come after the start's. The
    agent's clock orders them; the older one changes nothing (the CI failure it guards:
    a read made during a rename listed both names and overwrote the rename's read)."""
    async def check(state, watcher, node_id, direct, calls):
        client = watcher.clients.get(node_id)
        created = await client.request(
            "POST", "/containers/create", "", [("Content-Type", "application/json")],
            json.dumps(BODY).encode(), read_back=True)
        cid = json.loads(await created.body())["Id"]
        started = await client.request("POST", f"/containers/{cid}/start", read_back=True)
        await started.body()
        older, newer = created.read_back, started.read_back
        assert older.read_at_ns < newer.read_at_ns
        assert watcher.records.take_read_back(node_id, newer).state == "running"
        before = calls["DockerCall"]
        kept = watcher.records.take_read_back(node_id, older)
        assert kept.state == "running" and state.container(cid).state == "running"
        await _until(lambda: calls["DockerCall"] >= before + 2, DELAY * 3)  # read again
        assert state.container(cid).state == "running"

    asyncio.run(_scenario(check))


def test_a_refresh_a_change_overtook_keeps_the_change_and_reads_again():
    """A record stored while a re-read was under way (a change's answer) may be newer
    than what the re-read saw: it stays, and the container is read once more."""
    async def check(state, watcher, node_id, direct, calls):
        watcher.records.refresh_delay = 0.2
        status, answer = await direct.request_json("POST", "/containers/create", "",
                                                   BODY)
        assert status == 201
        cid = answer["Id"]
        await _until(lambda: state.container(cid) is not None, DELAY)  # its event
        await asyncio.sleep(0.3)
        before = calls["DockerCall"]
        reading = asyncio.ensure_future(watcher.records.refresh(node_id, cid))
        await asyncio.sleep(0)                   # the inspect is on its way
        guessed = after_action(state.container(cid), "start")
        watcher.records.write(guessed)           # a start's answer, written meanwhile
        assert (await reading).state == "running"
        assert state.container(cid).state == "running"  # not the "created" it read
        await _until(lambda: calls["DockerCall"] >= before + 4, DELAY)  # read again
        await _until(lambda: state.container(cid).state == "created", DELAY)  # the truth

    asyncio.run(_scenario(check))
