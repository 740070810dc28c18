"""Stopping a long-running command on SIGINT/SIGTERM, the same way in every program."""

from __future__ import annotations

import asyncio
import contextlib
import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> list[int]:
    """Set `stop` on SIGINT/SIGTERM; the signals whose handlers were installed. None
    are when the loop cannot take them (not the main thread, as when tests embed a
    program): the caller's own `stop` still works then."""
    installed = []
    for sig in STOP_SIGNALS:
        with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    return installed


def ignore_from_now(loop: asyncio.AbstractEventLoop, installed: list[int]) -> None:
    """Once a program has stopped and is about to exit: take `installed` (what
    stop_on_signals returned) off the loop, and ignore those signals from here on. A
    second SIGTERM (a supervisor and a process group both signalling, as a namespace's
    or a container's teardown does) must not kill the program in the last moments of
    its exit, or before: callers keep the handlers through their whole stop."""
    for sig in installed:
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
