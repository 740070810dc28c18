"""Keep the garbage collector's passes short in a process that holds a large, lasting
heap (the manager's container records, a hollow fleet's containers).

CPython's collector rescans every object of a generation on each of its passes. At
100,000 containers the heap is millions of objects, so an old-generation pass stopped
the manager for ~1.8 s, and a middle one, once a burst of creates had piled its records
up there, for ~300 ms: every request in flight waited. `gc.freeze()` moves every object
alive at that moment out of the collector's sight, so a pass scans only what was made
since.

The policy: at the end of every collection, freeze what survived it (what lives
through a pass is nearly always what lasts: records, connections, waiting streams);
freezing is two list splices, so it costs nothing. The price is that cyclic garbage
frozen along with it (a request in flight at that moment) is not reclaimed; so when the
process has been idle for a while, and at most every `thaw_every` seconds, everything
is given back to the collector and collected in one full pass (the one long pause, when
nobody is waiting), then frozen again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("flock.gc")

# Young passes every 50,000 net allocations (Python's default is 700), and on the tick
# (Freezer._run says why). A young pass costs about 0.5 us per young object at 10,000
# nodes (waiting coroutines, futures and their frames are most of them), so 200,000,
# the figure before the freezer, stopped the manager for 100-500 ms each time. More
# passes, but with what survives frozen, each object is scanned about once either way.
THRESHOLDS = (50_000, 20, 100)
TICK = 0.5  # seconds between young passes and looks for idleness
IDLE = 10.0  # seconds without a request before a thaw may run
THAW_EVERY = 600.0  # seconds: at most one thaw (full pass) this often


def should_thaw(idle_for: float, since_thaw: float, froze_since_thaw: bool,
                idle: float = IDLE, thaw_every: float = THAW_EVERY) -> bool:
    """Whether to give the frozen objects back to a full pass now: idle for `idle`
    seconds, none for `thaw_every`, and something frozen since (else it finds nothing)."""
    return froze_since_thaw and idle_for >= idle and since_thaw >= thaw_every


class Freezer:
    """The policy above: a gc.callbacks entry that freezes after each collection, and
    an asyncio task that thaws when idle. `last_activity()` is the monotonic time of
    the latest request (the process is idle since then)."""

    def __init__(self, last_activity: Callable[[], float], tick: float = TICK,
                 idle: float = IDLE, thaw_every: float = THAW_EVERY) -> None:
        self.last_activity = last_activity
        self.tick, self.idle, self.thaw_every = tick, idle, thaw_every
        self.freezes = 0
        self.thaws = 0
        self._thawed = time.monotonic()
        self._froze = False
        self._task: asyncio.Task | None = None

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "stop":
            gc.freeze()
            self.freezes += 1
            self._froze = True

    def start(self) -> Freezer:
        """Installs the callback and starts the idle watch (in the running loop)."""
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="gc-freezer")
        return self

    async def stop(self) -> None:
        """Stops freezing and gives every frozen object back to the collector."""
        if self in gc.callbacks:
            gc.callbacks.remove(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        gc.unfreeze()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            # A young pass on time, not only on the allocation count: the count is
            # allocations minus deallocations, and a record replaced by a new one
            # (every change of a container) adds one of each, so the young list grew
            # to hundreds of thousands of objects between the passes the count
            # triggered (100-500 ms each at 10,000 nodes). Each tick's pass scans
            # only what the tick made.
            gc.collect(0)
            self.look()

    def look(self) -> bool:
        """Thaws when the policy says so; whether it did."""
        now = time.monotonic()
        if not should_thaw(now - self.last_activity(), now - self._thawed, self._froze,
                           self.idle, self.thaw_every):
            return False
        frozen = gc.get_freeze_count()
        gc.unfreeze()
        began = time.perf_counter()
        freed = gc.collect()  # frozen again at its end, by __call__
        self.thaws += 1
        self._thawed = now
        self._froze = False
        log.info("idle: full garbage collection of %d frozen objects freed %d in %.0f ms",
                 frozen, freed, (time.perf_counter() - began) * 1000)
        return True
