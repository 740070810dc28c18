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
