"""One client body streamed to several nodes at once (docker load and import go to every
healthy node), never held whole in the manager.

A pump reads the client's body once and hands each chunk to every branch that is still
open, through a short queue per branch: the manager holds a few chunks per node, so a
10 MB or a 10 GB upload costs the same memory, and the client sends as fast as the
slowest node reads. A branch whose node refused early or went away is closed and
skipped from then on, so the others keep going.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

DEPTH = 4  # chunks queued per branch (aiohttp hands out up to 64 KiB at a time)
_END = None


class Branch:
    """What one node is sent: an async iterator over the body's chunks."""

    def __init__(self, depth: int) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(depth)
        self.closed = False

    def __aiter__(self) -> Branch:
        return self

    async def __anext__(self) -> bytes:
        if self.closed:
            raise StopAsyncIteration
        chunk = await self.queue.get()
        if chunk is _END:
            self.closed = True
            raise StopAsyncIteration
        return chunk

    def close(self) -> None:
        """Nothing more for this node; what is queued is dropped so the pump never
        waits on it."""
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()


class Tee:
    """`branches` see the same chunks of `source`, once `pump()` runs."""

    def __init__(self, source: AsyncIterator[bytes], count: int, depth: int = DEPTH) -> None:
        self._source = source
        self.branches = [Branch(depth) for _ in range(count)]

    async def pump(self) -> None:
        """Read the source to its end (or until every branch is closed). A branch closed
        while the pump waits for room in it frees that room (Branch.close), so a node
        that stops reading never holds up the others."""
        async for chunk in self._source:
            live = [b for b in self.branches if not b.closed]
            if not live:
                return
            for branch in live:
                if not branch.closed:
                    await branch.queue.put(chunk)
        for branch in self.branches:
            if not branch.closed:
                await branch.queue.put(_END)
