"""Which asyncio event loop the long-running processes use.

uvloop (libuv) runs the same asyncio programs with cheaper transports, timers and
callbacks, where the manager and hollow fleets spend much of their CPU (the Docker
API's requests, the agents' streams): a gRPC message costs 10-17% less on it, a
plain TCP message a third (bench/grpc_floor.py). It is used when it is installed,
unless FLOCK_EVENT_LOOP=asyncio asks for the standard loop (a comparison, or a platform
where uvloop misbehaves). Agents run on it too (`flock join`): an agent in front of a
real engine spent about 12% less CPU per `docker run` on it, and the exec runtime's
subprocesses and terminals pass their tests on it (tests/integration/test_exec_*).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
CHOICES = ("auto", "uvloop", "asyncio")


class LoopChoiceError(ValueError):
    """FLOCK_EVENT_LOOP names no loop this machine can run."""


def loop_factory() -> Any:
    """The loop class to run on: uvloop's when chosen and importable, else None (the
    standard loop)."""
    choice = os.environ.get("FLOCK_EVENT_LOOP", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        raise LoopChoiceError(f"FLOCK_EVENT_LOOP={choice!r}: use one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopChoiceError("FLOCK_EVENT_LOOP=uvloop but uvloop is not installed "
                             "(pip install uvloop)") from None
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the chosen loop (LoopChoiceError, `main` closed, when there is
    none)."""
    try:
        factory = loop_factory()
    except LoopChoiceError:
        main.close()
        raise
    if factory is None:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
