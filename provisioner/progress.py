"""What `flock machine create` shows while it works on one machine or a fleet.

On a terminal, a fleet (several machines at once) gets a live table with each machine's
current step and how long it has taken, so a stuck machine stands out. Anywhere else
(a pipe, a CI log) or for one machine, every step is one plain line, prefixed with the
machine's name when there are several, as Docker Machine prints its driver's messages.
Steps arrive from many threads; output is serialised here.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

WAITING = "Waiting to start"


class FleetProgress:
    """Progress of several machines; use as a context manager around the work."""

    def __init__(self, names: list[str], out: TextIO | None = None,
                 live: bool | None = None, errors: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.errors = errors or sys.stderr   # plain mode: failures go to stderr
        self.names = list(names)
        if live is None:
            live = len(self.names) > 1 and _is_tty(self.out)
        self.live = live
        self.prefix = len(self.names) > 1
        self._lock = threading.Lock()
        self._step = {n: WAITING for n in self.names}
        self._outcome = {n: "" for n in self.names}     # "", "done", "failed"
        self._began: dict[str, float] = {}
        self._ended: dict[str, float] = {}
        self._live: Live | None = None

    def __enter__(self) -> FleetProgress:
        if self.live:
            console = Console(file=self.out, force_terminal=True)
            self._live = Live(get_renderable=self._table, console=console,
                              refresh_per_second=4, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    # --- what workers call ---------------------------------------------------------------
    def reporter(self, name: str) -> Callable[[str], None]:
        """The `progress` callable a driver or provisioning step gets for `name`."""
        return lambda text: self.step(name, text)

    def step(self, name: str, text: str) -> None:
        with self._lock:
            self._began.setdefault(name, time.monotonic())
            self._step[name] = text
            if not self.live:
                self._print(name, text)

    def done(self, name: str, text: str) -> None:
        self._finish(name, "done", text)

    def failed(self, name: str, text: str) -> None:
        self._finish(name, "failed", text)

    def _finish(self, name: str, outcome: str, text: str) -> None:
        with self._lock:
            self._began.setdefault(name, time.monotonic())
            self._ended[name] = time.monotonic()
            self._outcome[name] = outcome
            self._step[name] = text
            if not self.live:
                self._print(name, text, self.errors if outcome == "failed" else self.out)

    # --- rendering -----------------------------------------------------------------------
    def _print(self, name: str, text: str, stream: TextIO | None = None) -> None:
        stream = stream or self.out
        for line in text.splitlines() or [""]:
            stream.write(f"({name}) {line}\n" if self.prefix else f"{line}\n")
        stream.flush()

    def _elapsed(self, name: str) -> str:
        if name not in self._began:
            return ""
        seconds = int(self._ended.get(name, time.monotonic()) - self._began[name])
        return f"{seconds // 60}:{seconds % 60:02d}"

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False, show_edge=False)
        widest = max((len(n) for n in self.names), default=7)
        table.add_column("MACHINE", no_wrap=True, min_width=max(widest, 7))
        table.add_column("TIME", justify="right", no_wrap=True, min_width=5)
        table.add_column("STEP", overflow="ellipsis", no_wrap=True)
        with self._lock:
            for name in self.names:
                outcome = self._outcome[name]
                style = {"done": "green", "failed": "red"}.get(outcome, "")
                mark = {"done": "✓ ", "failed": "✗ "}.get(outcome, "")
                step = (self._step[name].splitlines() or [""])[0]   # one line per machine
                table.add_row(name, self._elapsed(name), mark + step,
                              style=style or None)
        return table


def _is_tty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False
