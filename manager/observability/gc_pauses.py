"""How long Python's garbage collector stops the manager, as a metric and a log line.

A full collection scans every object the manager holds, and at 100,000 containers that
is millions of them: every request in flight waits meanwhile. Such pauses are invisible
in a profile (they are charged to whatever allocated last) and explain latency spikes
that nothing else does, so they are measured where they happen.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("flock.manager.gc")
LONG = 0.1  # seconds: a pause this long is logged


class PauseObserver:
    """A gc.callbacks entry: times each collection and tells `observe(generation,
    seconds)`; logs the long ones. `install()` / `remove()` add and take it away."""

    def __init__(self, observe: Callable[[int, float], None]) -> None:
        self.observe = observe
        self._began = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        seconds = time.perf_counter() - self._began
        generation = info.get("generation", 0)
        self.observe(generation, seconds)
        if seconds >= LONG:
            log.info("garbage collection of generation %d stopped everything for %.0f ms "
                     "(%d objects freed)", generation, seconds * 1000,
                     info.get("collected", 0))

    def install(self) -> PauseObserver:
        if self not in gc.callbacks:
            gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
