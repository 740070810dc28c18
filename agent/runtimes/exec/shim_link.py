"""The runtime's side of a shim's attach socket (protocol in attach_socket)."""

from __future__ import annotations

import asyncio
import json
import pathlib

from flock.agent.runtimes.exec import attach_socket
from flock.agent.runtimes.exec.errors import ApiError

RESIZE_TIMEOUT = 5.0


async def _connect(folder: pathlib.Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    with attach_socket.reachable(folder) as where:
        return await asyncio.open_unix_connection(where)


async def open_attach(folder: pathlib.Path, *, stdin: bool, stdout: bool, stderr: bool
                      ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connected and attached; raises OSError when no shim listens there."""
    reader, writer = await _connect(folder)
    hello = {"stdin": stdin, "stdout": stdout, "stderr": stderr}
    writer.write(json.dumps(hello).encode() + b"\n")
    await writer.drain()
    return reader, writer


async def resize(folder: pathlib.Path, height: int, width: int) -> None:
    """Set the container's TTY size through its shim."""
    try:
        reader, writer = await _connect(folder)
    except OSError as exc:
        raise ApiError(500, f"cannot reach the container's shim: {exc}") from None
    try:
        writer.write(json.dumps({"resize": [height, width]}).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), RESIZE_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise ApiError(500, f"cannot resize the TTY: {exc}") from None
    finally:
        writer.close()
    answer = json.loads(line) if line.strip() else {"error": "the shim did not answer"}
    if answer.get("error"):
        raise ApiError(500, answer["error"])
