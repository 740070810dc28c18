"""Events the manager makes itself (cron runs), for `docker events` and the
ClusterService's Events stream beside the nodes' own.

The nodes' events come from their engines; a cron run's start or end happens in the
manager, so it is published here and every open stream subscribed here gets it. Live
only, like the streams that read it: nothing is kept for a later `since`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator


class LocalEvents:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue] = set()

    def publish(self, kind: str, action: str, actor: str, attributes: dict[str, str]) -> dict:
        """Send one event, in the Engine's shape, to every open stream; returns it."""
        now = time.time_ns()
        event = {"Type": kind, "Action": action, "status": action, "id": actor,
                 "Actor": {"ID": actor, "Attributes": attributes}, "scope": "swarm",
                 "time": now // 1_000_000_000, "timeNano": now}
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):  # a stalled client loses events
                queue.put_nowait(event)
        return event

    @contextlib.contextmanager
    def subscribe(self, size: int = 1000) -> Iterator[asyncio.Queue]:
        """A queue of the events published while the block runs."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=size)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)


def wanted(event: dict, filters: dict[str, list[str]]) -> bool:
    """Whether `docker events --filter` keeps a manager event: its type and event
    (action) filters; a filter on anything a manager event has not (container, image,
    node...) leaves it out, as such a filter asks for other events."""
    for key, values in filters.items():
        if key == "type":
            if event["Type"] not in values:
                return False
        elif key == "event":
            if event["Action"] not in values:
                return False
        elif key == "label":
            continue
        else:
            return False
    return True
