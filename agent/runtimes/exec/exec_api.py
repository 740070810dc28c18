"""HTTP handlers for exec: create, start (hijacked or detached), inspect, resize."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from flock.agent.runtimes.exec.container_api import json_body
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.execs import ExecInstance, ExecManager
from flock.agent.runtimes.exec.fdstream import FdStream
from flock.agent.runtimes.exec.jsonresp import json_response
from flock.agent.runtimes.exec.tty import requested_size
from flock.docker_compat.hijack import Inbound, raw_stream_response, take_over
from flock.docker_compat.stdcopy import STDERR, STDOUT, frame

DRAIN_SECONDS = 2.0  # output still read after the process exited (children may hold it)


def _execs(request: web.Request) -> ExecManager:
    return request.app[CORE].execs


async def _object_body(request: web.Request, what: str) -> dict:
    body = await json_body(request)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request(f"the {what} must be a JSON object")
    return body


async def create(request: web.Request) -> web.Response:
    body = await _object_body(request, "exec config")
    exec_id = _execs(request).create(request.match_info["id"], body)
    return json_response({"Id": exec_id}, status=201)


async def inspect(request: web.Request) -> web.Response:
    return json_response(_execs(request).get(request.match_info["id"]).inspect())


async def resize(request: web.Request) -> web.Response:
    execs = _execs(request)
    inst = execs.get(request.match_info["id"])
    height, width = requested_size(request.query)
    try:
        execs.resize(inst, height, width)
    except OSError as exc:
        raise bad_request(f"cannot resize exec {inst.id}: {exc}") from None
    return web.Response(status=200)


async def start(request: web.Request) -> web.StreamResponse:
    execs = _execs(request)
    inst = execs.get(request.match_info["id"])
    body = await _object_body(request, "exec start config")
    if body.get("Detach"):
        await execs.launch(inst, attached=False)
        return web.Response(status=200)
    response = raw_stream_response(request)
    await execs.launch(inst, attached=True)
    try:
        await response.prepare(request)
        inbound = take_over(request)
        await _pump(inst, inbound, response)
    finally:
        execs.close_tty(inst)
    return response


class _Output:
    """Writes to the client until it goes away; the process is not disturbed by that."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.gone = False

    async def write(self, data: bytes) -> None:
        if self.gone:
            return
        try:
            await self.response.write(data)
        except ConnectionError:
            self.gone = True


async def _pump(inst: ExecInstance, inbound: Inbound, response: web.StreamResponse) -> None:
    """Output to the client and its stdin to the process, until the process exited and
    its output is drained."""
    out = _Output(response)
    proc = inst.process
    assert proc is not None
    if inst.tty:
        assert inst.master is not None
        pty = FdStream(inst.master)
        copiers = [_copy(pty.read, out.write)]
        feed = pty.write if inst.attach_stdin else None
        close_stdin = None
    else:
        copiers = [_copy(pipe.read, lambda d, s=sid: out.write(frame(s, d)))
                   for pipe, sid in ((proc.stdout, STDOUT), (proc.stderr, STDERR)) if pipe]
        feed = _pipe_writer(proc.stdin) if proc.stdin else None
        close_stdin = proc.stdin.close if proc.stdin else None
    output = asyncio.gather(*(asyncio.ensure_future(c) for c in copiers))
    stdin = asyncio.create_task(_stdin(inbound, feed, close_stdin))
    try:
        await inst.done.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(output), DRAIN_SECONDS)
    finally:
        output.cancel()
        stdin.cancel()
        with contextlib.suppress(BaseException):
            await output


def _pipe_writer(pipe: asyncio.StreamWriter):
    async def write(data: bytes) -> None:
        pipe.write(data)
        await pipe.drain()
    return write


async def _copy(read, write) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await read(65536):
            await write(data)


async def _stdin(inbound: Inbound, feed, close) -> None:
    """The client's bytes to the process; its half-close closes the process's stdin."""
    with contextlib.suppress(ConnectionError, OSError):
        while (data := await inbound.queue.get()) is not None:
            if feed is not None:
                await feed(data)
        if close is not None:
            close()


def routes() -> list[tuple[str, str, object]]:
    return [
        ("POST", "/containers/{id}/exec", create),
        ("POST", "/exec/{id}/start", start),
        ("POST", "/exec/{id}/resize", resize),
        ("GET", "/exec/{id}/json", inspect),
    ]
