"""One line per step: `[3/9] etcd on 10.160.4.1:2379 ... ok (1.2s)`, so that a newcomer
sees where a slow or failing start is."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    def __init__(self, total: int, out: TextIO | None = None) -> None:
        self.total = total
        self.index = 0
        self.out = out or sys.stdout
        self.note = ""  # set inside a step: printed after "ok"

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    @contextmanager
    def step(self, text: str) -> Iterator[Progress]:
        self.index += 1
        self.note = ""
        print(f"[{self.index}/{self.total}] {text} ...", end=" ", file=self.out, flush=True)
        started = time.monotonic()
        try:
            yield self
        except BaseException:
            print("FAILED", file=self.out, flush=True)
            raise
        took = time.monotonic() - started
        note = f"{self.note}, " if self.note else ""
        print(f"ok ({note}{took:.1f}s)", file=self.out, flush=True)
