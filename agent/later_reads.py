"""Read-backs sent after the answer (DockerCallRequest.read_back_later), one per burst.

A `docker run` is a create and, a few milliseconds later, a start of the same
container. Each change answered at once owes the manager a read of the container (an
inspect and its list entry), and each read is two more requests for the engine while
it starts the container: on this 2-core machine those reads alone moved the `docker
run` latency ratio through the manager from about 1.012 to 1.03
(bench/docker_run_latency.py, with and without them). So a read begins DELAY after its
change, and a change of the same container that comes in the meantime holds it back
(`defer`) and, once answered, takes its place: the create's read is left to the
start's, which is later and says everything the first would have. A start takes the
engine 100-200 ms, so the hold lasts until its answer; a change that fails lets the
read it held go ahead (`resume`). The manager needs nothing more: the read covers every reason up to
its time (manager/cluster/freshness.py), and its own re-read waits 300 ms for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from flock.protos import agent_pb2

# Reads container `ref` after request `req` changed it, and sends the read on.
Read = Callable[[agent_pb2.DockerRequest, str], Awaitable[None]]

# Seconds between a change and its read: more than a create's answer and the start that
# follows take through the manager (2-3 ms, up to ~10 on a loaded machine), little
# against the manager's own re-read (300 ms).
DELAY = 0.02


class LaterReads:
    """The reads waiting to begin, by container reference, and those under way."""

    def __init__(self, read: Read, delay: float = DELAY) -> None:
        self._read = read
        self.delay = delay
        # By container reference: the change to read after, and its timer (None while
        # another change of the container is under way).
        self._waiting: dict[str, tuple[agent_pb2.DockerRequest,
                                       asyncio.TimerHandle | None]] = {}
        self._running: set[asyncio.Task] = set()
        self.replaced = 0  # reads left to a later change of the same container

    def schedule(self, req: agent_pb2.DockerRequest, ref: str) -> None:
        """Read `ref` DELAY from now, unless another change of it comes first."""
        earlier = self._waiting.pop(ref, None)
        if earlier is not None:
            if earlier[1] is not None:
                earlier[1].cancel()
            self.replaced += 1
        loop = asyncio.get_running_loop()
        self._waiting[ref] = (req, loop.call_later(self.delay, self._begin, ref))

    def defer(self, ref: str) -> bool:
        """Another change of `ref` is under way: hold its waiting read, if there is
        one, until that change is answered. Whether a read was held."""
        waiting = self._waiting.get(ref)
        if waiting is None or waiting[1] is None:
            return False
        waiting[1].cancel()
        self._waiting[ref] = (waiting[0], None)
        return True

    def resume(self, ref: str) -> None:
        """The change that held `ref`'s read is over; unless its own read took the
        place (schedule), the held read begins."""
        waiting = self._waiting.get(ref)
        if waiting is not None and waiting[1] is None:
            loop = asyncio.get_running_loop()
            self._waiting[ref] = (waiting[0], loop.call_later(self.delay, self._begin, ref))

    def _begin(self, ref: str) -> None:
        req, _ = self._waiting.pop(ref)
        task = asyncio.get_running_loop().create_task(self._read(req, ref))
        self._running.add(task)  # kept alive until done
        task.add_done_callback(self._running.discard)

    def close(self) -> None:
        for _, timer in self._waiting.values():
            if timer is not None:
                timer.cancel()
        self._waiting.clear()
        for task in self._running:
            task.cancel()
