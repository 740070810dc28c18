"""agent/later_reads.py: one read-back per burst of changes to a container. A create's
read waits DELAY; a start of the same container that comes meanwhile holds it for as
long as the engine takes to start it (100-200 ms, far past DELAY), and its own read
takes the place; a change that fails lets the held read go ahead. A read under way when
a change of its container comes is not sent: it is made again after the change."""

from __future__ import annotations

import asyncio

from flock.agent.later_reads import LaterReads
from flock.protos import agent_pb2

CREATE = agent_pb2.DockerRequest(method="POST", path="/containers/create")
START = agent_pb2.DockerRequest(method="POST", path="/containers/c1/start")


def _reads(delay: float = 0.01, takes: float = 0.0
           ) -> tuple[LaterReads, list[tuple[str, str]], list[tuple[str, str]]]:
    """LaterReads whose reads take `takes` seconds; what was read, what was sent on."""
    done: list[tuple[str, str]] = []
    sent: list[tuple[str, str]] = []

    async def read(req: agent_pb2.DockerRequest, ref: str) -> agent_pb2.ContainerRead:
        await asyncio.sleep(takes)
        done.append((req.path, ref))
        return agent_pb2.ContainerRead(id=ref, inspect=req.path.encode())

    def publish(read: agent_pb2.ContainerRead) -> None:
        sent.append((read.inspect.decode(), read.id))

    return LaterReads(read, publish, delay), done, sent


def test_a_change_alone_is_read_after_the_delay_and_sent_on():
    async def main():
        reads, done, sent = _reads()
        reads.schedule(CREATE, "c1")
        await asyncio.sleep(0.005)
        assert done == []
        await asyncio.sleep(0.03)
        assert done == sent == [("/containers/create", "c1")]
    asyncio.run(main())


def test_a_start_under_way_holds_the_create_s_read_and_takes_its_place():
    async def main():
        reads, done, sent = _reads()
        reads.schedule(CREATE, "c1")
        with reads.changing("c1"):         # the start's request came
            await asyncio.sleep(0.05)      # the engine is starting it: no read yet
            assert done == []
            reads.schedule(START, "c1")    # answered: its read replaces the create's
        await asyncio.sleep(0.05)
        assert done == sent == [("/containers/c1/start", "c1")]
        assert reads.replaced == 1
    asyncio.run(main())


def test_a_change_that_fails_lets_the_held_read_go_ahead():
    async def main():
        reads, done, sent = _reads()
        reads.schedule(CREATE, "c1")
        try:
            with reads.changing("c1"):
                await asyncio.sleep(0.03)
                raise ConnectionError("the start failed: nothing scheduled")
        except ConnectionError:
            pass
        await asyncio.sleep(0.05)
        assert done == sent == [("/containers/create", "c1")]
    asyncio.run(main())


def test_the_read_waits_for_every_change_of_its_container_under_way():
    async def main():
        reads, done, _ = _reads()
        reads.schedule(CREATE, "c1")
        first, second = reads.changing("c1"), reads.changing("c1")
        first.__enter__()
        second.__enter__()
        first.__exit__(None, None, None)
        await asyncio.sleep(0.03)
        assert done == []                  # the second is still under way
        second.__exit__(None, None, None)
        await asyncio.sleep(0.03)
        assert done == [("/containers/create", "c1")]
    asyncio.run(main())


def test_another_container_s_change_holds_nothing():
    async def main():
        reads, done, _ = _reads()
        reads.schedule(CREATE, "c1")
        with reads.changing("c2"), reads.changing(""):
            await asyncio.sleep(0.03)
            assert done == [("/containers/create", "c1")]
    asyncio.run(main())


def test_a_read_a_change_overlapped_is_not_sent_but_made_again_after_it():
    """The CI failure this guards: a start's read under way while the container was
    renamed listed it under both names, and overwrote the rename's read."""
    async def main():
        reads, done, sent = _reads(takes=0.03)
        reads.schedule(START, "c1")
        await asyncio.sleep(0.015)          # the read has begun
        with reads.changing("c1"):          # a rename, with no later read of its own
            await asyncio.sleep(0.04)       # the read ends meanwhile
            assert done == [("/containers/c1/start", "c1")] and sent == []
        await asyncio.sleep(0.08)
        assert done == [("/containers/c1/start", "c1")] * 2
        assert sent == [("/containers/c1/start", "c1")]
        assert reads.overlapped == 1
    asyncio.run(main())


def test_an_overlapped_read_is_left_to_the_read_the_change_scheduled():
    async def main():
        reads, done, sent = _reads(takes=0.03)
        reads.schedule(CREATE, "c1")
        await asyncio.sleep(0.015)
        with reads.changing("c1"):
            reads.schedule(START, "c1")
        await asyncio.sleep(0.1)
        assert sent == [("/containers/c1/start", "c1")]
        assert done == [("/containers/create", "c1"), ("/containers/c1/start", "c1")]
    asyncio.run(main())


def test_close_drops_what_waits_and_what_runs():
    async def main():
        reads, done, sent = _reads(takes=0.05)
        reads.schedule(CREATE, "c1")
        reads.schedule(CREATE, "c2")
        await asyncio.sleep(0.015)
        with reads.changing("c3"):
            reads.schedule(CREATE, "c3")
        reads.close()
        await asyncio.sleep(0.08)
        assert done == sent == []
    asyncio.run(main())
