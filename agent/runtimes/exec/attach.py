"""`POST /containers/{id}/attach` (hijacked) and `POST /containers/{id}/resize`.

The runtime holds no stream of its own: an attach is a connection to the container's
shim (see attach_socket), so containers keep their stdin and TTY across agent restarts.
`docker run` attaches before it starts the container; such an attach waits for the start,
and the shim waits for it before running the command, so no output is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib

from aiohttp import web

from flock.agent.runtimes.exec import shim_link
from flock.agent.runtimes.exec.containers import ContainerManager
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import conflict
from flock.agent.runtimes.exec.logs import LogFile
from flock.agent.runtimes.exec.store import ContainerRecord
from flock.agent.runtimes.exec.tty import requested_size
from flock.docker_compat.hijack import Inbound, raw_stream_response, take_over
from flock.docker_compat.stdcopy import HEADER, STREAM_IDS, frame, parse_header

CONNECT_SECONDS = 10.0


def _flag(request: web.Request, key: str) -> bool:
    return request.query.get(key, "").lower() in ("1", "true", "yes")


class Want:
    """What the client asked for, narrowed to what the container offers."""

    def __init__(self, request: web.Request, record: ContainerRecord) -> None:
        self.stream = _flag(request, "stream")
        self.logs = _flag(request, "logs")
        self.stdin = _flag(request, "stdin") and bool(record.config.get("OpenStdin"))
        self.stdout = _flag(request, "stdout")
        self.stderr = _flag(request, "stderr")
        self.tty = bool(record.config.get("Tty"))
        # The Engine's rule for the end of the client's stdin: with StdinOnce (and no
        # TTY) the container's stdin closes and output goes on; otherwise the attach ends.
        self.close_stdin = bool(record.config.get("StdinOnce")) and not self.tty

    def streams(self) -> set[str]:
        return {s for s, on in (("stdout", self.stdout), ("stderr", self.stderr)) if on}


async def handle_attach(request: web.Request) -> web.StreamResponse:
    manager: ContainerManager = request.app[CORE].containers
    record = manager.get(request.match_info["id"])
    want = Want(request, record)
    response = raw_stream_response(request)
    await response.prepare(request)
    inbound = take_over(request)
    manager.event(record, "attach")
    with contextlib.suppress(ConnectionError):
        if want.logs:
            await _replay_logs(manager, record, want, response)
        if want.stream:
            link = await _connect_when_started(manager, record, want, inbound)
            if link is not None:
                await _pump(link, inbound, want, response)
    return response


async def _replay_logs(manager: ContainerManager, record: ContainerRecord, want: Want,
                       response: web.StreamResponse) -> None:
    entries = await asyncio.to_thread(LogFile(manager.store.log_path(record.id)).read_new)
    chosen = want.streams()
    out = b"".join(e["log"].encode() if want.tty else frame(STREAM_IDS[e["stream"]],
                                                             e["log"].encode())
                   for e in entries if e.get("stream") in chosen)
    if out:
        await response.write(out)


async def _connect_when_started(manager: ContainerManager, record: ContainerRecord,
                                want: Want, inbound: Inbound):
    """The shim link once the container runs (waiting for its start if need be); None
    when the container went away or ended first, or the client left."""
    cid = record.id
    if not manager.state(record).running and cid not in manager.launching:
        waiter = manager.expect_start(cid)
        lost = asyncio.ensure_future(inbound.lost.wait())
        try:
            await asyncio.wait([waiter, lost], return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            manager.forget_start(cid, waiter)
        if not waiter.done() or not waiter.result():
            return None
    folder: pathlib.Path = manager.store.dir(cid)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_SECONDS
    while not inbound.lost.is_set():
        try:
            return await shim_link.open_attach(folder, stdin=want.stdin, stdout=want.stdout,
                                               stderr=want.stderr)
        except OSError:
            pass
        busy = cid in manager.launching or (cid in manager.records
                                            and manager.state(record).running)
        if not busy or loop.time() > deadline:
            return None
        await asyncio.sleep(0.02)
    return None


async def _pump(link, inbound: Inbound, want: Want, response: web.StreamResponse) -> None:
    """Client stdin to the shim, the shim's output to the client, until the container
    ended (the shim closes) or the client went away."""
    reader, writer = link

    async def stdin() -> None:
        with contextlib.suppress(ConnectionError):
            while (data := await inbound.queue.get()) is not None:
                if want.stdin:
                    writer.write(data)
                    await writer.drain()
            if not want.stdin or writer.is_closing():
                return
            if want.close_stdin and writer.can_write_eof():
                writer.write_eof()
            else:
                writer.close()

    async def client_gone() -> None:
        await inbound.lost.wait()
        writer.close()

    helpers = [asyncio.create_task(stdin()), asyncio.create_task(client_gone())]
    try:
        while True:
            try:
                header = await reader.readexactly(HEADER.size)
                payload = await reader.readexactly(parse_header(header)[1])
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            await response.write(payload if want.tty else header + payload)
    finally:
        for task in helpers:
            task.cancel()
        writer.close()


async def handle_resize(request: web.Request) -> web.Response:
    manager: ContainerManager = request.app[CORE].containers
    record = manager.get(request.match_info["id"])
    height, width = requested_size(request.query)
    if not manager.state(record).running:
        raise conflict(f"Container {record.id} is not running")
    if record.config.get("Tty"):
        await shim_link.resize(manager.store.dir(record.id), height, width)
    return web.Response(status=200)


def routes() -> list[tuple[str, str, object]]:
    return [
        ("POST", "/containers/{id}/attach", handle_attach),
        ("POST", "/containers/{id}/resize", handle_resize),
    ]
