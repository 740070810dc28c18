"""`GET /containers/{id}/logs`: the json-file log read back, framed as the Engine frames
it (8-byte headers without a TTY, raw bytes with one), optionally followed until the
container stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
from collections import deque

from aiohttp import web

from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.timefmt import parse_client_time, parse_rfc3339nano
from flock.docker_compat.stdcopy import STREAM_IDS, frame


def _flag(request: web.Request, key: str) -> bool:
    return request.query.get(key, "").lower() in ("1", "true", "yes")


class LogSelection:
    """Which entries a request wants and how to print them."""

    def __init__(self, request: web.Request, tty: bool) -> None:
        self.streams = {s for s in ("stdout", "stderr") if _flag(request, s)}
        if not self.streams:
            raise bad_request("Bad parameters: you must choose at least one stream")
        self.timestamps = _flag(request, "timestamps")
        self.since = parse_client_time(request.query.get("since", ""), 0)
        self.until = parse_client_time(request.query.get("until", ""), 0)
        tail = request.query.get("tail", "all")
        try:
            self.tail = -1 if tail in ("all", "") else max(int(tail), 0)
        except ValueError:
            raise bad_request(f"invalid value for tail: {tail}") from None
        self.tty = tty

    def wanted(self, entry: dict) -> bool:
        if entry.get("stream") not in self.streams:
            return False
        if self.since or self.until:
            ns = parse_rfc3339nano(entry.get("time", ""))
            if self.since and ns < self.since:
                return False
            if self.until and ns > self.until:
                return False
        return True

    def frame(self, entry: dict) -> bytes:
        payload = entry["log"].encode()
        if self.timestamps:
            payload = entry["time"].encode() + b" " + payload
        if self.tty:
            return payload
        return frame(STREAM_IDS[entry["stream"]], payload)


class LogFile:
    """Reads whole lines from a log a shim is still appending to."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return entries


async def handle_logs(request: web.Request) -> web.StreamResponse:
    manager = request.app[CORE].containers
    record = manager.get(request.match_info["id"])
    selection = LogSelection(request, bool(record.config.get("Tty")))
    follow = _flag(request, "follow")
    log = LogFile(manager.store.log_path(record.id))
    resp = web.StreamResponse(headers={"Content-Type": "application/vnd.docker.raw-stream"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    with contextlib.suppress(ConnectionResetError):  # the client went away
        await _copy(request, resp, record, selection, log, follow)
    return resp


async def _copy(request: web.Request, resp: web.StreamResponse, record, selection: LogSelection,
                log: LogFile, follow: bool) -> None:
    manager = request.app[CORE].containers
    chosen = [e for e in await asyncio.to_thread(log.read_new) if selection.wanted(e)]
    if selection.tail >= 0:
        chosen = list(deque(chosen, maxlen=selection.tail)) if selection.tail else []
    await _send(resp, selection, chosen)
    closing = request.app[CORE].closing
    while follow and not closing.is_set():
        running = record.id in manager.records and manager.state(record).running
        await _send(resp, selection, [e for e in log.read_new() if selection.wanted(e)])
        if not running:
            break
        await asyncio.sleep(0.1)
    await resp.write_eof()


async def _send(resp: web.StreamResponse, selection: LogSelection, entries: list[dict]) -> None:
    if entries:
        await resp.write(b"".join(selection.frame(e) for e in entries))
