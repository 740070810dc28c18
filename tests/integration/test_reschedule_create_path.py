"""Rescheduling goes through the one create path (manager/placement/create.py).

The difference it makes, seen from the agents: the rescheduled copy is created and
started with the agent reading the container back in each answer, as a `docker run`
through the Docker API is, so the move costs the target node two agent calls and its
record is exact at once. The rescheduler's own create path (before issue 20) sent a
create and a start without read-back and then re-read the container (inspect + list):
four calls, and a record that lagged behind the start. Also: the move holds the name
from the decision (the old copy may share it meanwhile), pins away from the old node,
and the old copy is removed on its node when that node answers.

Real hollow agents on loopback, a real NodeWatcher over nodes:// discovery, the real
scheduler; the agent calls are counted by each AgentClient's own RPC observer (as
test_refresh_burst.py does)."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict

import pytest

from flock import discovery
from flock.agent.runtimes.hollow.runtime import HollowRuntime
from flock.agent.runtimes.hollow.service import HollowAgentService
from flock.agent.server import make_server
from flock.manager.cluster.agent_client import AgentClient
from flock.manager.cluster.labels import RESCHEDULE_LABEL, SWARM_ID_LABEL
from flock.manager.cluster.state import ClusterState
from flock.manager.cluster.sync import NodeWatcher
from flock.manager.placement.create import Placement
from flock.manager.placement.reschedule import Rescheduler
from flock.manager.scheduler.drain import set_drained
from flock.manager.scheduler.rules import parse_rule
from flock.manager.scheduler.scheduler import Scheduler
from flock.manager.scheduler.spec import spec_from_create
from tests.conftest import free_port

pytestmark = pytest.mark.timeout(60)
DELAY = 2.0  # the records' wait for a burst: reads after it would show by then
BODY = {"Image": "busybox", "Cmd": ["sleep", "1d"],
        "Labels": {RESCHEDULE_LABEL: '["on-node-failure"]'}}


async def _agents(names: list[str]):
    """Hollow agents, one per name: (runtime, service, server, address) each."""
    started = []
    for name in names:
        runtime = HollowRuntime(node_name=name)
        await runtime.start()
        addr = f"127.0.0.1:{free_port()}"
        service = HollowAgentService(runtime, addr, name)
        server, _ = make_server(service, addr)
        await server.start()
        started.append((runtime, service, server, addr))
    return started


async def _scenario(check) -> None:
    agents = await _agents(["alpha", "beta"])
    calls: dict[str, Counter] = defaultdict(Counter)  # agent address -> method -> calls
    state = ClusterState()
    backend = discovery.open_backend("nodes://" + ",".join(a[3] for a in agents))
    watcher = NodeWatcher(state, backend, heartbeat=30, client_factory=lambda a: AgentClient(
        a, observer=lambda method, seconds, ok: calls[a].update([method])))
    watcher.records.refresh_delay = DELAY
    placement = Placement(state, Scheduler(), watcher.records, watcher.clients)
    rescheduler = Rescheduler(placement)
    watcher.rescheduler = watcher.records.rescheduler = rescheduler
    try:
        await watcher.start()
        assert len(state.healthy_nodes()) == 2
        nodes = {n.name: n for n in state.nodes()}
        await check(state, placement, rescheduler, nodes, calls, agents)
    finally:
        await watcher.stop()
        for runtime, service, server, _ in agents:
            await server.stop(0)
            await service.calls.close()
            await runtime.stop()


def _run_on(placement: Placement, node, name: str):
    spec = spec_from_create(BODY, name)
    return placement.run(BODY, spec, name, pinned=[parse_rule(f"node=={node.id}")])


def test_a_move_is_a_create_and_a_start_read_back_like_a_docker_run():
    async def check(state, placement, rescheduler, nodes, calls, agents):
        alpha, beta = nodes["alpha"], nodes["beta"]
        old = (await _run_on(placement, alpha, "mover")).record
        assert old.node_id == alpha.id and old.create_config is not None
        before = calls[beta.addr]["DockerCall"]

        # alpha is healthy: only the pin away from the old node sends it to beta.
        assert await rescheduler.move(state.container(old.id))
        new = next(c for c in state.containers(beta.id) if c.name == "mover")
        # The record is exact as soon as the move returns: no read was needed for it.
        assert new.node_id == beta.id and new.state == "running"
        assert new.image_id.startswith("sha256:")
        assert new.labels[SWARM_ID_LABEL] == old.labels[SWARM_ID_LABEL]
        assert new.create_config is not None  # it may be moved again
        assert state.container(old.id) is None
        assert rescheduler.moved == 1
        await asyncio.sleep(DELAY * 1.5)  # past the burst: the events made no reads either
        assert calls[beta.addr]["DockerCall"] == before + 2, calls[beta.addr]
        # alpha answers, so the old copy is gone from its engine, not just from the view.
        assert old.id not in agents[0][0].core.node.containers

    asyncio.run(_scenario(check))


def test_a_move_with_nowhere_to_go_changes_nothing():
    async def check(state, placement, rescheduler, nodes, calls, agents):
        alpha, beta = nodes["alpha"], nodes["beta"]
        old = (await _run_on(placement, alpha, "stuck")).record
        set_drained(state, beta.id, True)  # the old node is pinned out, beta drained
        before = calls[beta.addr]["DockerCall"], state.usage(beta.id).containers
        assert not await rescheduler.move(state.container(old.id))
        assert state.container(old.id) is not None and rescheduler.moved == 0
        assert (calls[beta.addr]["DockerCall"], state.usage(beta.id).containers) == before
        assert state.name_taken("stuck")  # the old copy's name, no claim left behind
        set_drained(state, beta.id, False)
        assert await rescheduler.move(state.container(old.id))  # once beta is back

    asyncio.run(_scenario(check))
