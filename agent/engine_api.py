"""The few Docker API calls the agent itself makes on its runtime's endpoint (/info,
/version, /events), as opposed to the requests it only forwards."""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator

import aiohttp

from flock.agent.engine_endpoint import Endpoint, as_endpoint


class EngineError(Exception):
    """The runtime did not answer as a Docker Engine should; the message says why."""


def _session(endpoint: Endpoint, timeout: float | None) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=endpoint.connector(),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def get_json(target: Endpoint | str, path: str,
                   timeout: float = 10) -> tuple[object, bytes]:
    """GET `path` from the runtime at `target` (an Endpoint or a unix socket path):
    (parsed JSON, raw body)."""
    endpoint = as_endpoint(target)
    try:
        async with _session(endpoint, timeout) as session:
            async with session.get(f"{endpoint.base_url}{path}") as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise EngineError(
                        f"runtime answered GET {path} with {resp.status}: "
                        f"{raw[:200].decode(errors='replace')}"
                    )
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise EngineError(f"runtime at {endpoint} does not answer GET {path}: {exc}") from exc
    try:
        return json.loads(raw), raw
    except ValueError as exc:
        raise EngineError(f"runtime answered GET {path} with bad JSON: {exc}") from exc


async def events(target: Endpoint | str, since: float = 0) -> AsyncIterator[bytes]:
    """The runtime's /events stream, one raw JSON object per item, held open."""
    endpoint = as_endpoint(target)
    params = {"since": f"{since:.9f}"} if since > 0 else {}
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        async with _session(endpoint, None) as session:
            async with session.get(f"{endpoint.base_url}/events", params=params) as resp:
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
        raise EngineError(f"runtime event stream at {endpoint} failed: {exc}") from exc
