"""Pull and push progress in the Engine's JSON-stream format (jsonmessage), so the
docker CLI draws its usual bars. The stream starts with the first message: an error
before it is a plain HTTP error, after it an `error` line, as dockerd answers."""

from __future__ import annotations

import json
import time

from aiohttp import web


def human_size(size: float) -> str:
    """Go's units.HumanSize (1000-based, 4 significant digits), as jsonmessage words it."""
    units = ["B", "kB", "MB", "GB", "TB"]
    unit = 0
    while size >= 1000 and unit < len(units) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{units[unit]}"


def bar(current: int, total: int, width: int = 50) -> str:
    """jsonmessage's `[=====>     ]  1.2MB/3.4MB`."""
    if total <= 0:
        return f"{human_size(current)}"
    filled = min(width, width * current // total)
    arrow = "=" * max(filled - 1, 0) + (">" if filled < width else "=") if filled else ""
    return f"[{arrow.ljust(width)}] {human_size(current):>8}/{human_size(total)}"


class ProgressStream:
    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None
        self._last: dict[str, float] = {}

    @property
    def started(self) -> bool:
        return self.response is not None

    async def _write(self, message: dict) -> None:
        if self.response is None:
            self.response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await self.response.prepare(self.request)
        await self.response.write(json.dumps(message).encode() + b"\r\n")

    async def status(self, text: str, ident: str = "", detail: bool = False) -> None:
        message: dict = {"status": text}
        if detail:
            message["progressDetail"] = {}
        if ident:
            message["id"] = ident
        await self._write(message)

    async def progress(self, text: str, ident: str, current: int, total: int) -> None:
        """At most ten lines a second per layer, and always the last one."""
        now = time.monotonic()
        if current < total and now - self._last.get(ident, 0.0) < 0.1:
            return
        self._last[ident] = now
        await self._write({"status": text, "progressDetail": {"current": current,
                                                               "total": total},
                           "progress": bar(current, total), "id": ident})

    async def aux(self, data: dict) -> None:
        await self._write({"progressDetail": {}, "aux": data})

    async def error(self, text: str) -> None:
        await self._write({"errorDetail": {"message": text}, "error": text})

    async def finish(self) -> web.StreamResponse:
        if self.response is None:
            await self._write({"status": ""})
        assert self.response is not None
        await self.response.write_eof()
        return self.response
