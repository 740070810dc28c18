"""Events a manager already knows from a read-back, left out of its event stream.

Every change through a DockerCall makes the node emit events (a `docker run`: create,
then start), and the manager that made the change has read the container back after
it (read_back.py): those events tell it nothing new, and it drops them on arrival
(manager/cluster/freshness.py). Sending them anyway costs both sides a gRPC message
each, a third of the messages of a create+start. So a manager names its event stream
(EventsRequest.token) and its DockerCalls carry that name; the agent notes, per stream,
each container read back for that manager and the time of the read, and leaves out of
that stream the container's events up to then. Other streams (another manager, a
client's `docker events`) get every event. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flock.protos.agent_pb2 import EventsRequest

KEEP = 4096  # containers remembered per stream (the ones being changed right now)


class Reflected:
    """One stream's containers and the agent time up to which their events are known."""

    __slots__ = ("_read_at",)

    def __init__(self) -> None:
        self._read_at: OrderedDict[str, int] = OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._read_at)

    def note(self, container_id: str, read_at_ns: int) -> None:
        if read_at_ns <= self._read_at.get(container_id, 0):
            return
        self._read_at[container_id] = read_at_ns
        self._read_at.move_to_end(container_id)
        if len(self._read_at) > KEEP:
            self._read_at.popitem(last=False)

    def covers(self, event: dict) -> bool:
        """Whether the stream's manager already knows what `event` says. A destroy is
        always sent: the container is gone, and no read says so."""
        if event.get("Type") != "container" or event.get("Action") == "destroy":
            return False
        actor = event.get("Actor") or {}
        read_at = self._read_at.get(actor.get("ID") or event.get("id") or "")
        time_ns = event.get("timeNano") or 0
        return read_at is not None and 0 < time_ns <= read_at


class ReflectedEvents:
    """The named streams open on this agent."""

    def __init__(self) -> None:
        self._streams: dict[str, Reflected] = {}

    @contextlib.contextmanager
    def stream(self, request: EventsRequest) -> Iterator[Reflected | None]:
        """The stream `request` opens, while it is open; None for one without a name. Only
        a stream that takes read-backs is named: a manager that does not follow its
        read-backs there must get every event, or it would miss the changes they show."""
        token = request.token if request.read_backs else ""
        if not token:
            yield None
            return
        reflected = self._streams[token] = Reflected()
        try:
            yield reflected
        finally:
            if self._streams.get(token) is reflected:
                del self._streams[token]

    def note(self, token: str, container_id: str, read_at_ns: int) -> None:
        """The manager of stream `token` got container `container_id` as read at
        `read_at_ns`; nothing when no such stream is open (yet)."""
        reflected = self._streams.get(token) if token else None
        if reflected is not None and container_id and read_at_ns:
            reflected.note(container_id, read_at_ns)
