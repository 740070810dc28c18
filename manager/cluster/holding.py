"""Holding a reservation or a name claim for exactly as long as the change it guards.

A client that hangs up cancels its handler (the manager serves with handler
cancellation), but not the create or rename already sent to a node: the engine finishes
it anyway. Releasing the claim at the cancellation would let another request take the
name while the first container is still being made, and the cluster would end with two
containers of one name. So the change runs as a task of its own, shielded from the
caller's cancellation, and the claim goes when that task is done, whichever way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from flock.manager.cluster.state import ClusterState

log = logging.getLogger("flock.manager.holding")

T = TypeVar("T")


async def hold_until_done(state: ClusterState, token: int, work: Coroutine[Any, Any, T]) -> T:
    """`await work` with `token` (from `state.reserve` or `state.claim_name`) released
    once `work` has finished, failed or been cancelled itself; cancelling the caller
    leaves `work` running to its end."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda done: _settle(state, token, done))
    return await asyncio.shield(task)


def _settle(state: ClusterState, token: int, task: asyncio.Future) -> None:
    state.release(token)
    if not task.cancelled() and task.exception() is not None:
        # Retrieved here too: when the caller was cancelled, nobody else reads it.
        log.debug("change under claim %d failed: %r", token, task.exception())
