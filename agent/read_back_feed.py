"""Read-backs sent after the answer, on the event streams of the managers that ask.

Reading a container back inside its DockerCall (read_back.py) keeps the manager's record
exact without more round trips, but the answer waits for the read: on a real engine
1-4 ms after a create or a start, and far longer after a start whose command exits at
once (the engine holds the container's lock while it cleans up). A manager that follows
this agent's events with `read_backs` asks for the read-back later instead: the agent
answers the change at once and sends the read as an Event on those streams, where it
comes in order with the container's own events. The manager meanwhile writes what the
change implies and would re-read the container after a short delay; the read-back
arriving first makes that re-read unnecessary. A read-back lost (a stream that broke, a
full queue) only costs that re-read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from flock.agent.reflected_events import Reflected
from flock.common import json_codec
from flock.protos import agent_pb2

QUEUE = 1024  # events and read-backs waiting for one slow stream before read-backs drop

_END = object()


class ReadBackFeed:
    """The event streams that take read-backs, each a queue fed by `publish`."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue] = set()

    @property
    def listened(self) -> bool:
        """Whether any stream takes read-backs now; else the read goes in the answer."""
        return bool(self._queues)

    def publish(self, read: agent_pb2.ContainerRead) -> None:
        event = agent_pb2.Event(read_back=read)
        for queue in self._queues:
            if queue.qsize() < QUEUE:
                queue.put_nowait(event)

    @contextlib.contextmanager
    def _listen(self, queue: asyncio.Queue) -> Iterator[None]:
        self._queues.add(queue)
        try:
            yield
        finally:
            self._queues.discard(queue)

    async def merged(self, events: AsyncIterator[bytes], reflected: Reflected | None = None
                     ) -> AsyncIterator[agent_pb2.Event]:
        """The runtime's `events` (raw JSON) with the read-backs published meanwhile,
        in the order they came. Errors of the runtime's stream are raised here. The
        events a read-back sent here (or noted in `reflected` for this stream's
        manager) already reflects are left out (reflected_events.py)."""
        queue: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            try:
                async with contextlib.aclosing(events):
                    async for raw in events:
                        queue.put_nowait(agent_pb2.Event(json=raw))
            except Exception as exc:  # noqa: BLE001 - raised again on the stream's side
                queue.put_nowait(exc)
            else:
                queue.put_nowait(_END)

        with self._listen(queue):
            reader = asyncio.create_task(pump())
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, Exception):
                        raise item
                    if reflected is not None:
                        if item.HasField("read_back"):
                            if item.read_back.inspect:
                                reflected.note(item.read_back.id, item.read_back.read_at_ns)
                        elif reflected and _covered(reflected, item.json):
                            continue
                    yield item
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)


def _covered(reflected: Reflected, raw: bytes) -> bool:
    try:
        event = json_codec.loads(raw)
    except ValueError:
        return False
    return isinstance(event, dict) and reflected.covers(event)
