"""Read-backs sent after the answer (DockerCallRequest.read_back_later), one per burst.

A `docker run` is a create and, a few milliseconds later, a start of the same
container. Each change answered at once owes the manager a read of the container (an
inspect and its list entry), and each read is two more requests for the engine while
it starts the container: on this 2-core machine those reads alone moved the `docker
run` latency ratio through the manager from about 1.012 to 1.03
(bench/docker_run_latency.py, with and without them). So a read begins DELAY after its
change, and a change of the same container that comes in the meantime holds it back
and, once answered, takes its place: the create's read is left to the start's, which
is later and says everything the first would have. A start takes the engine 100-200
ms, so the hold lasts until its answer; a change that fails lets the read it held go
ahead. The manager needs nothing more: the read covers every reason up to its time
(manager/cluster/freshness.py), and its own re-read waits 300 ms for them.

A read sent on never overlapped a change of its container through this agent: one under
way when the change comes is not sent but made again after it, unless a read begun
after the change, or waiting to, takes its place. A read that overlapped a rename saw
the engine between its taking the new name and its letting the old go, and listed both
(the list answer takes them from the engine's names table, moby container/view.go):
sent on, it would have overwritten the rename's own exact read at the manager, and
`docker ps` showed two names until the next read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator

from flock.protos import agent_pb2

# Reads container `ref` after request `req` changed it; None when it cannot be read.
Read = Callable[[agent_pb2.DockerRequest, str], Awaitable[agent_pb2.ContainerRead | None]]
# Sends a read on (to the event streams that take read-backs).
Publish = Callable[[agent_pb2.ContainerRead], None]

# Seconds between a change and its read: more than a create's answer and the start that
# follows take through the manager (2-3 ms, up to ~10 on a loaded machine), little
# against the manager's own re-read (300 ms).
DELAY = 0.02


class _Read:
    """A read under way, and whether a change of its container came meanwhile."""

    __slots__ = ("req", "overlapped")

    def __init__(self, req: agent_pb2.DockerRequest) -> None:
        self.req = req
        self.overlapped = False


class LaterReads:
    """The reads waiting to begin, by container reference; the changes and the reads
    of each container under way."""

    def __init__(self, read: Read, publish: Publish, delay: float = DELAY) -> None:
        self._read = read
        self._publish = publish
        self.delay = delay
        # By container reference: the change to read after, and its timer (None while
        # a change of the container is under way).
        self._waiting: dict[str, tuple[agent_pb2.DockerRequest,
                                       asyncio.TimerHandle | None]] = {}
        self._changes: Counter[str] = Counter()
        self._reading: dict[str, list[_Read]] = {}
        self._tasks: set[asyncio.Task] = set()
        self.replaced = 0    # reads left to a later change of the same container
        self.overlapped = 0  # reads not sent because a change came while they ran

    @contextlib.contextmanager
    def changing(self, ref: str) -> Iterator[None]:
        """A change of container `ref` ("" for a request about none) is under way:
        its waiting read is held, and a read under way will not be sent."""
        if not ref:
            yield
            return
        self._changes[ref] += 1
        waiting = self._waiting.get(ref)
        if waiting is not None and waiting[1] is not None:
            waiting[1].cancel()
            self._waiting[ref] = (waiting[0], None)
        for read in self._reading.get(ref, ()):
            read.overlapped = True
        try:
            yield
        finally:
            self._changes[ref] -= 1
            if not self._changes[ref]:
                del self._changes[ref]
                self._start_timer(ref)

    def schedule(self, req: agent_pb2.DockerRequest, ref: str) -> None:
        """Read `ref` DELAY after the changes of it under way are over, unless another
        change of it comes first."""
        earlier = self._waiting.pop(ref, None)
        if earlier is not None:
            if earlier[1] is not None:
                earlier[1].cancel()
            self.replaced += 1
        self._wait(req, ref)

    def _wait(self, req: agent_pb2.DockerRequest, ref: str) -> None:
        self._waiting[ref] = (req, None)
        if ref not in self._changes:
            self._start_timer(ref)

    def _start_timer(self, ref: str) -> None:
        waiting = self._waiting.get(ref)
        if waiting is not None and waiting[1] is None:
            loop = asyncio.get_running_loop()
            self._waiting[ref] = (waiting[0], loop.call_later(self.delay, self._begin, ref))

    def _begin(self, ref: str) -> None:
        req, _ = self._waiting.pop(ref)
        read = _Read(req)
        self._reading.setdefault(ref, []).append(read)
        task = asyncio.get_running_loop().create_task(self._run(read, ref))
        self._tasks.add(task)  # kept alive until done
        task.add_done_callback(self._tasks.discard)

    async def _run(self, read: _Read, ref: str) -> None:
        try:
            found = await self._read(read.req, ref)
        finally:
            under_way = self._reading[ref]
            under_way.remove(read)
            if not under_way:
                del self._reading[ref]
        if not read.overlapped:
            if found is not None:
                self._publish(found)
            return
        self.overlapped += 1
        newer = ref in self._waiting or any(
            not other.overlapped for other in self._reading.get(ref, ()))
        if not newer:  # the change left no read of its own
            self._wait(read.req, ref)

    def close(self) -> None:
        for _, timer in self._waiting.values():
            if timer is not None:
                timer.cancel()
        self._waiting.clear()
        for task in self._tasks:
            task.cancel()
