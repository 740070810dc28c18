"""A start goes to the runtime only once the runtime has the waits sent before it.

Why: `docker run` sends its wait (condition next-exit) and sends the start only once the
wait's head is back, so that the engine knows of the wait before the container can
exit; a wait that came after the exit would wait for the next one, for ever. The
manager writes a wait's head to its client itself, at once (manager/api/docker/
containers.wait), having first sent the wait on the same ordered call stream the start
will take. So the agent has the wait before the start, and this is where the client's
order is kept: a start (or restart) of a container whose wait has no head from the
runtime yet is held until it has, or until that wait failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from flock.agent.read_back import verb_ref
from flock.protos import agent_pb2

log = logging.getLogger(__name__)

# Verbs that can make a container exit, whose call must follow the waits before it.
HELD = frozenset({"start", "restart"})
# How long a start waits for a runtime that has not answered a wait's head: past it
# the start goes anyway (a runtime that slow would fail the client's own order too).
HOLD_LIMIT = 10.0


_WAIT = frozenset({"wait"})


def wait_ref(req: agent_pb2.DockerRequest) -> str:
    """The container a `POST /containers/{ref}/wait` is for; "" for any other request."""
    return verb_ref(req, _WAIT)


def held_ref(req: agent_pb2.DockerRequest) -> str:
    """The container a start or restart is for; "" for any other request."""
    return verb_ref(req, HELD)


class WaitHeads:
    """The waits sent to the runtime whose heads are not in yet, by container."""

    def __init__(self) -> None:
        self._pending: dict[str, set[asyncio.Future]] = {}

    def sent(self, ref: str) -> Callable[[], None]:
        """A wait for `ref` goes to the runtime now; returns what to call once its head
        is in or it failed (more than once is fine)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.setdefault(ref, set()).add(future)

        def headed() -> None:
            if future.done():
                return
            future.set_result(None)
            waits = self._pending.get(ref)
            if waits is not None:
                waits.discard(future)
                if not waits:
                    del self._pending[ref]

        return headed

    async def before(self, ref: str) -> None:
        """Returns once every wait for `ref` sent so far has its head (or failed)."""
        waits = self._pending.get(ref)
        if not waits:
            return
        _, late = await asyncio.wait(set(waits), timeout=HOLD_LIMIT)
        if late:
            log.warning("a start of %s went after %.0f s without the runtime's answer to "
                        "a wait sent before it", ref, HOLD_LIMIT)

    def __len__(self) -> int:
        return len(self._pending)
