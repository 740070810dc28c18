"""agent/later_reads.py: one read-back per burst of changes to a container. A create's
read waits DELAY; a start of the same container that comes meanwhile holds it for as
long as the engine takes to start it (100-200 ms, far past DELAY), and its own read
takes the place; a change that fails lets the held read go ahead."""

from __future__ import annotations

import asyncio

from flock.agent.later_reads import LaterReads
from flock.protos import agent_pb2

CREATE = agent_pb2.DockerRequest(method="POST", path="/containers/create")
START = agent_pb2.DockerRequest(method="POST", path="/containers/c1/start")


def _reads(delay: float = 0.01) -> tuple[LaterReads, list[tuple[str, str]]]:
    done: list[tuple[str, str]] = []

    async def read(req: agent_pb2.DockerRequest, ref: str) -> None:
        done.append((req.path, ref))

    return LaterReads(read, delay), done


def test_a_change_alone_is_read_after_the_delay():
    async def main():
        reads, done = _reads()
        reads.schedule(CREATE, "c1")
        await asyncio.sleep(0.005)
        assert done == []
        await asyncio.sleep(0.03)
        assert done == [("/containers/create", "c1")]
    asyncio.run(main())


def test_a_start_under_way_holds_the_create_s_read_and_takes_its_place():
    async def main():
        reads, done = _reads()
        reads.schedule(CREATE, "c1")
        assert reads.defer("c1")           # the start's request came
        await asyncio.sleep(0.05)          # the engine is starting it: no read yet
        assert done == []
        reads.schedule(START, "c1")        # answered: its read replaces the create's
        reads.resume("c1")
        await asyncio.sleep(0.05)
        assert done == [("/containers/c1/start", "c1")]
        assert reads.replaced == 1
    asyncio.run(main())


def test_a_change_that_fails_lets_the_held_read_go_ahead():
    async def main():
        reads, done = _reads()
        reads.schedule(CREATE, "c1")
        assert reads.defer("c1")
        reads.resume("c1")                 # the start failed: nothing scheduled
        await asyncio.sleep(0.05)
        assert done == [("/containers/create", "c1")]
    asyncio.run(main())


def test_nothing_to_hold_for_another_container_or_a_read_under_way():
    async def main():
        reads, done = _reads()
        reads.schedule(CREATE, "c1")
        assert not reads.defer("c2")
        await asyncio.sleep(0.05)
        assert not reads.defer("c1")       # already read: nothing waits
        reads.resume("c1")
        await asyncio.sleep(0.03)
        assert done == [("/containers/create", "c1")]
    asyncio.run(main())


def test_close_drops_what_waits():
    async def main():
        reads, done = _reads()
        reads.schedule(CREATE, "c1")
        reads.schedule(CREATE, "c2")
        assert reads.defer("c2")
        reads.close()
        await asyncio.sleep(0.05)
        assert done == []
    asyncio.run(main())
