"""common/gc_freezer.py: what survives a collection is frozen at its end, and cyclic
garbage frozen by accident goes back to a full pass once the process is idle."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

from flock.common.gc_freezer import Freezer, should_thaw


def test_thaws_only_idle_after_freezing_and_not_too_often():
    every = {"idle": 10.0, "thaw_every": 600.0}
    assert should_thaw(11, 601, True, **every)
    assert not should_thaw(9, 601, True, **every)  # busy
    assert not should_thaw(11, 599, True, **every)  # thawed lately
    assert not should_thaw(11, 601, False, **every)  # nothing frozen since


class Node:
    pass


def cycle() -> Node:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a


def test_survivors_freeze_and_idle_gives_their_garbage_back():
    async def scenario() -> None:
        freezer = Freezer(time.monotonic, tick=3600, idle=10.0, thaw_every=0.0).start()
        try:
            alive = cycle()  # a request in flight, say
            held = weakref.ref(alive)
            gc.collect()  # a pass: what survived it is frozen at its end
            assert gc.get_freeze_count() > 0 and freezer.freezes >= 1
            del alive  # now garbage, but a cycle: only a pass could free it
            gc.collect()
            assert held() is not None  # frozen: no pass sees it
            assert not freezer.look()  # busy: no thaw
            freezer.last_activity = lambda: time.monotonic() - 60  # idle for a minute
            assert freezer.look()
            assert held() is None and freezer.thaws == 1
            assert gc.get_freeze_count() > 0  # what lives is frozen again
        finally:
            await freezer.stop()
        assert freezer not in gc.callbacks and gc.get_freeze_count() == 0

    asyncio.run(scenario())
