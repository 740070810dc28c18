"""Which container records still need a re-read. Pure bookkeeping, no I/O.

A record is re-read from its node for reasons: a change the manager made (create,
start...), an event from the node. Most reasons are already answered by a read that
started after them, or by the read-back an agent returns with a change; re-reading for
those is pure cost (at a thousand nodes, half the work of a `docker run`). So each
reason and each read takes a number from one counter: a record needs a read only while
its newest reason is newer than its newest read. Events carry the engine's clock, so a
read-back, which carries the agent's clock at the time of reading, also covers the
events up to then.
"""

from __future__ import annotations

from collections import OrderedDict


class Freshness:
    """Per container: the newest reason to read it, the newest read, and the engine
    time up to which its events are reflected. Forgets the oldest beyond `keep`."""

    def __init__(self, keep: int = 20_000) -> None:
        self.keep = keep
        self._tick = 0
        self._wanted: OrderedDict[str, int] = OrderedDict()
        self._read: OrderedDict[str, int] = OrderedDict()
        self._engine_ns: OrderedDict[str, int] = OrderedDict()

    def _next(self) -> int:
        self._tick += 1
        return self._tick

    def _put(self, table: OrderedDict[str, int], container_id: str, value: int) -> None:
        table[container_id] = value
        table.move_to_end(container_id)
        while len(table) > self.keep:
            table.popitem(last=False)

    def want(self, container_id: str) -> None:
        """A reason to read the container arose now."""
        self._put(self._wanted, container_id, self._next())

    def reading(self, container_id: str, engine_ns: int = 0) -> None:
        """A read of the container starts now (or was made by the agent at `engine_ns`
        on its clock): every reason so far is answered by it."""
        self._put(self._read, container_id, self._next())
        if engine_ns > self._engine_ns.get(container_id, 0):
            self._put(self._engine_ns, container_id, engine_ns)

    def newer_read_back(self, container_id: str, engine_ns: int) -> bool:
        """Whether a read-back the agent made after `engine_ns` (its clock) was taken:
        an older one that comes later (reads sent after the answer travel apart from
        it) says less, and must not overwrite it."""
        return 0 < engine_ns < self._engine_ns.get(container_id, 0)

    def covers_event(self, container_id: str, event_ns: int) -> bool:
        """Whether an event (engine time `event_ns`) is already reflected by a read-back."""
        return 0 < event_ns <= self._engine_ns.get(container_id, 0)

    def needs_read(self, container_id: str) -> bool:
        """Whether a reason arose after the container's newest read."""
        return self._wanted.get(container_id, 0) > self._read.get(container_id, 0)

    def forget(self, container_id: str) -> None:
        for table in (self._wanted, self._read, self._engine_ns):
            table.pop(container_id, None)
