"""Node names are unique: two real agents (on two real engines) that both call their
node `vm` do not both get in. The second is refused, shown Pending with the reason in
`docker info`, and told so in its own log; the first keeps its name across a restart
(same node ID), and the refused one gets in once it has a name of its own."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys

import pytest

from flock.agent.cli import run_agent
from flock.manager.app import Manager, ManagerConfig
from flock.manager.cluster.model import HEALTHY, PENDING
from tests.conftest import free_port
from tests.support.cluster import LoopThread, agent_args, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(180)]

HOW = "restart its agent with `flock join --name NAME`"


class Agents:
    """Agents started and stopped on the loop thread, each at a fixed address."""

    def __init__(self, lt: LoopThread, tmp_path) -> None:
        self.lt = lt
        self.tmp_path = tmp_path
        self.running: dict[str, tuple[asyncio.Event, object]] = {}

    def start(self, engine, addr: str, name: str) -> None:
        stop = self.lt.run(_event())
        state_dir = str(self.tmp_path / addr.replace(":", "-"))
        future = self.lt.spawn(run_agent(agent_args(engine, addr, name, state_dir), stop))
        self.running[addr] = (stop, future)

    def stop(self, addr: str) -> None:
        stop, future = self.running.pop(addr)
        self.lt.loop.call_soon_threadsafe(stop.set)
        future.result(15)

    def stop_all(self) -> None:
        for addr in list(self.running):
            self.stop(addr)


async def _event() -> asyncio.Event:
    return asyncio.Event()


def test_a_second_node_named_like_the_first_is_refused_until_renamed(
        engine_pair, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    lt = LoopThread()
    agents = Agents(lt, tmp_path)
    addrs = [f"127.0.0.1:{free_port()}" for _ in engine_pair]
    engine_of = dict(zip(addrs, engine_pair, strict=True))
    port = free_port()
    manager = None
    try:
        for addr in addrs:
            agents.start(engine_of[addr], addr, "vm")
        manager = Manager(ManagerConfig(discovery="nodes://" + ",".join(addrs),
                                        hosts=[f"tcp://127.0.0.1:{port}"], heartbeat=1.0,
                                        failure_retry=1, grpc_addr="127.0.0.1:0"))
        lt.run(manager.start())
        state = manager.state
        wait_for(lambda: state.node_by_name("vm") and state.node_by_name("vm").healthy
                 and len(state.nodes()) == 2 and HOW in _refused(state), 30, "the refusal")
        kept = state.node_by_name("vm")
        other = next(a for a in addrs if a != kept.addr)
        refused = state.node(other)  # shown under its address, Pending, with the reason
        assert refused.health == PENDING and refused.name == other
        assert f'node name "vm" is already taken by the node at {kept.addr}' in refused.error
        assert [n.name for n in state.healthy_nodes()] == ["vm"]

        info = _docker(port, "info")
        assert f"Error: {refused.error}" in info and "Status: Pending" in info
        listed = _flock(manager.grpc_address, "nodes")
        assert f"{other}: {refused.error}" in listed and "pending" in listed
        assert _logged(caplog, "flock.manager.sync", refused.error)  # the manager's log
        wait_for(lambda: _logged(caplog, "flock.agent.server",  # and the refused agent's
                                 f"the manager refuses this node: {refused.error}"),
                 what="the agent's log line")

        # The first node restarting (same engine, same address: same ID) is no duplicate.
        agents.stop(kept.addr)
        wait_for(lambda: state.node(kept.id).health != HEALTHY, 30, "the first node down")
        agents.start(engine_of[kept.addr], kept.addr, "vm")
        wait_for(lambda: _beat_after_restart(state, kept.id), 30, "the first node back")
        assert state.node_by_name("vm").id == kept.id and state.node(other).health == PENDING

        # Renamed, the second gets in.
        agents.stop(other)
        agents.start(engine_of[other], other, "vm-2")
        wait_for(lambda: state.node_by_name("vm-2") and state.node_by_name("vm-2").healthy,
                 30, "the renamed node")
        assert state.node(other) is None  # the placeholder is gone
        assert sorted(n.name for n in state.healthy_nodes()) == ["vm", "vm-2"]
        assert "Error: node name" not in _docker(port, "info")
    finally:
        if manager is not None:
            lt.run(manager.stop())
        agents.stop_all()
        lt.close()


def _refused(state) -> str:
    return " ".join(n.error for n in state.nodes() if n.health == PENDING)


def _beat_after_restart(state, node_id: str) -> bool:
    node = state.node(node_id)
    return node is not None and node.health == HEALTHY and node.name == "vm"


def _logged(caplog, logger: str, text: str) -> bool:
    return any(r.name == logger and text in r.getMessage() for r in caplog.records)


def _flock(grpc_addr: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "flock", *args], capture_output=True,
                          text=True, timeout=60, check=True,
                          env=dict(os.environ, FLOCK_HOST=grpc_addr))
    return done.stdout


def _docker(port: int, *args: str) -> str:
    done = subprocess.run(["docker", "-H", f"tcp://127.0.0.1:{port}", *args],
                          capture_output=True, timeout=60, check=True)
    return done.stdout.decode()
