"""The garbage collector's pauses are timed per generation and long ones logged
(manager/observability/gc_pauses.py), with real collections."""

from __future__ import annotations

import gc
import logging

from flock.manager.observability import gc_pauses
from flock.manager.observability.gc_pauses import PauseObserver


def test_every_collection_is_timed_by_generation_and_long_ones_are_logged(
        monkeypatch, caplog):
    seen: list[tuple[int, float]] = []
    observer = PauseObserver(lambda generation, seconds: seen.append((generation, seconds)))
    observer.install().install()  # twice: still one callback
    try:
        assert gc.callbacks.count(observer) == 1
        gc.collect(0)
        gc.collect(2)
        assert [g for g, _ in seen][-2:] == [0, 2]
        assert all(0 <= s < 5 for _, s in seen)
        monkeypatch.setattr(gc_pauses, "LONG", 0.0)
        with caplog.at_level(logging.INFO, logger="flock.manager.gc"):
            gc.collect(1)
        assert "garbage collection of generation 1 stopped everything for" in caplog.text
    finally:
        observer.remove()
    assert observer not in gc.callbacks
    count = len(seen)
    gc.collect()
    assert len(seen) == count  # removed: told nothing more
