"""One body to several nodes (manager/api/docker/body_tee.py): every open branch gets
every chunk, a closed branch holds up nobody, and no more than a few chunks wait."""

from __future__ import annotations

import asyncio

from flock.manager.api.docker.body_tee import Tee


async def chunks(count: int, size: int = 10):
    for index in range(count):
        yield bytes([index % 256]) * size


async def collect(branch) -> bytes:
    return b"".join([chunk async for chunk in branch])


def test_every_branch_gets_the_whole_body():
    async def run():
        tee = Tee(chunks(100), 3, depth=2)
        pump = asyncio.create_task(tee.pump())
        bodies = await asyncio.gather(*(collect(b) for b in tee.branches))
        await pump
        return bodies

    bodies = asyncio.run(run())
    expected = b"".join(bytes([i]) * 10 for i in range(100))
    assert bodies == [expected] * 3


def test_a_closed_branch_does_not_stop_the_others():
    async def run():
        tee = Tee(chunks(100), 2, depth=2)
        stuck, reader = tee.branches
        pump = asyncio.create_task(tee.pump())
        await asyncio.sleep(0.01)  # the stuck branch's queue is full: the pump waits
        assert stuck.queue.full()
        stuck.close()  # its node refused: no more for it, and room for the pump
        body = await asyncio.wait_for(collect(reader), 5)
        await asyncio.wait_for(pump, 5)
        return body, [chunk async for chunk in stuck]

    body, rest = asyncio.run(run())
    assert len(body) == 1000 and rest == []


def test_the_pump_stops_reading_when_no_branch_is_left():
    read = []

    async def source():
        for index in range(1000):
            read.append(index)
            yield b"x"

    async def run():
        tee = Tee(source(), 2, depth=1)
        for branch in tee.branches:
            branch.close()
        await asyncio.wait_for(tee.pump(), 5)

    asyncio.run(run())
    assert len(read) == 1


def test_the_pump_holds_at_most_depth_chunks_per_branch():
    async def run():
        tee = Tee(chunks(1000), 1, depth=3)
        pump = asyncio.create_task(tee.pump())
        await asyncio.sleep(0.01)
        queued = tee.branches[0].queue.qsize()
        pump.cancel()
        return queued

    assert asyncio.run(run()) == 3
