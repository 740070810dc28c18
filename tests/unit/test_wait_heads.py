"""agent/wait_heads.py: a start waits for the heads of the waits sent before it for the
same container, and for nothing else."""

from __future__ import annotations

import asyncio
import logging

import pytest

from flock.agent import wait_heads
from flock.agent.wait_heads import WaitHeads, held_ref, wait_ref
from flock.protos import agent_pb2


def _req(method: str, path: str) -> agent_pb2.DockerRequest:
    return agent_pb2.DockerRequest(method=method, path=path)


@pytest.mark.parametrize("method, path, waited, held", [
    ("POST", "/containers/abc/wait", "abc", ""),
    ("POST", "/containers/abc/start", "", "abc"),
    ("POST", "/containers/abc/restart", "", "abc"),
    ("POST", "/containers/abc/stop", "", ""),
    ("GET", "/containers/abc/json", "", ""),
    ("POST", "/containers/create", "", ""),
])
def test_which_requests_wait_and_which_are_held(method, path, waited, held):
    assert wait_ref(_req(method, path)) == waited
    assert held_ref(_req(method, path)) == held


def test_a_start_goes_once_every_wait_before_it_has_its_head():
    async def scenario():
        heads = WaitHeads()
        first, second = heads.sent("a"), heads.sent("a")
        other = heads.sent("b")
        start = asyncio.create_task(heads.before("a"))
        await asyncio.sleep(0.01)
        first()
        await asyncio.sleep(0.01)
        assert not start.done()       # the second wait has no head yet
        other()
        await asyncio.sleep(0.01)
        assert not start.done()       # another container's wait is not this one's
        second()
        second()                      # told twice (head, then the call's end): fine
        await asyncio.wait_for(start, 1)
        assert len(heads) == 0
        await asyncio.wait_for(heads.before("a"), 1)  # nothing pending: at once
    asyncio.run(scenario())


def test_a_runtime_that_never_answers_the_wait_holds_the_start_only_so_long(
        monkeypatch, caplog):
    monkeypatch.setattr(wait_heads, "HOLD_LIMIT", 0.05)

    async def scenario():
        heads = WaitHeads()
        headed = heads.sent("slow")
        with caplog.at_level(logging.WARNING, logger="flock.agent.wait_heads"):
            await asyncio.wait_for(heads.before("slow"), 1)
        assert "a start of slow went after" in caplog.text
        headed()
        assert len(heads) == 0
    asyncio.run(scenario())
