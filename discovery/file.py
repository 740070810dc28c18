"""`file:///path`: one address (or range) per line; `#` starts a comment.

The file is read again at every fetch, so editing it adds or removes agents.
"""

from __future__ import annotations

import asyncio
import pathlib

from flock.discovery.addresses import expand_all
from flock.discovery.backend import Backend, DiscoveryError


class FileBackend(Backend):
    def __init__(self, path: str) -> None:
        if not path:
            raise DiscoveryError("file:// needs a path, e.g. file:///etc/flock/cluster")
        self.path = pathlib.Path(path)
        # The last text read and its addresses: a file of 10,000 lines takes ~30 ms of
        # the interpreter's lock to expand at every fetch, and rarely changes.
        self._last: tuple[str, list[str]] | None = None

    async def fetch(self) -> list[str]:
        return await asyncio.to_thread(self._read)

    def _read(self) -> list[str]:
        try:
            text = self.path.read_text()
        except OSError as exc:
            raise DiscoveryError(f"cannot read discovery file {self.path}: {exc.strerror}") from exc
        if self._last is not None and self._last[0] == text:
            return list(self._last[1])
        addresses = self._parse(text)
        self._last = (text, addresses)
        return list(addresses)

    def _parse(self, text: str) -> list[str]:
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                entries.extend(expand_all([line]))
            except DiscoveryError as exc:
                raise DiscoveryError(f"{self.path}, line {number}: {exc}") from exc
        return expand_all(entries)
