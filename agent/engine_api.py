"""The few Docker API calls the agent itself makes on its runtime's socket (/info,
/version, /events), as opposed to the requests it only forwards."""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator

import aiohttp


class EngineError(Exception):
    """The runtime did not answer as a Docker Engine should; the message says why."""


def _session(socket_path: str, timeout: float | None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.UnixConnector(path=socket_path),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def get_json(socket_path: str, path: str, timeout: float = 10) -> tuple[object, bytes]:
    """GET `path` from the runtime: (parsed JSON, raw body)."""
    try:
        async with _session(socket_path, timeout) as session:
            async with session.get(f"http://docker{path}") as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise EngineError(
                        f"runtime answered GET {path} with {resp.status}: "
                        f"{raw[:200].decode(errors='replace')}"
                    )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise EngineError(f"runtime at {socket_path} does not answer GET {path}: {exc}") from exc
    try:
        return json.loads(raw), raw
    except ValueError as exc:
        raise EngineError(f"runtime answered GET {path} with bad JSON: {exc}") from exc


async def events(socket_path: str, since: float = 0) -> AsyncIterator[bytes]:
    """The runtime's /events stream, one raw JSON object per item, held open."""
    params = {"since": f"{since:.9f}"} if since > 0 else {}
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        async with _session(socket_path, None) as session:
            async with session.get("http://docker/events", params=params) as resp:
                if resp.status != 200:
                    body = (await resp.read())[:200].decode(errors="replace")
                    raise EngineError(f"runtime answered GET /events with {resp.status}: {body}")
                buffer = ""
                async for piece in resp.content.iter_any():
                    buffer += text.decode(piece)
                    while buffer := buffer.lstrip():
                        try:
                            _, end = decoder.raw_decode(buffer)
                        except ValueError:
                            break  # an object cut between reads: wait for the rest
                        yield buffer[:end].encode()
                        buffer = buffer[end:]
    except (aiohttp.ClientError, OSError) as exc:
        raise EngineError(f"runtime event stream at {socket_path} failed: {exc}") from exc
