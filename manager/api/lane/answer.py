"""A handler's answer as the bytes the hot lane writes: the head aiohttp would build for
the same `web.Response` (web_response.StreamResponse._prepare_headers, Response._start),
for the answers the lane's routes give, which are whole bytes bodies.

Pure but for the clock (`Date`), and checked like aiohttp's writer: a header holding a
control character is refused, never written.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import SERVER_SOFTWARE

_EMPTY_BODY = frozenset((204, 304, *range(100, 200)))  # aiohttp's EMPTY_BODY_STATUS_CODES


class NotForTheLane(Exception):
    """An answer the lane cannot write as aiohttp would (streamed, compressed...)."""


def head_fields(response: web.Response) -> None:
    """Complete `response.headers` as aiohttp does before the prepare hooks run."""
    headers = response.headers
    if response.chunked or response.compression or response.cookies:
        raise NotForTheLane("chunked, compressed or with cookies")
    body = response.body
    if body is not None and not isinstance(body, bytes | bytearray):
        raise NotForTheLane("a payload body")
    if response.status in _EMPTY_BODY:
        headers.popall("Content-Length", None)
        headers.popall("Transfer-Encoding", None)
    else:
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(body or b""))
        if body:
            headers.setdefault("Content-Type", "application/octet-stream")
    if "Date" not in headers:
        headers["Date"] = rfc822_formatted_time()
    headers.setdefault("Server", SERVER_SOFTWARE)


def answer_bytes(response: web.Response, close: bool) -> bytes:
    """The status line, headers and body; `Connection: close` when the lane closes the
    connection after it (aiohttp says so on an HTTP/1.1 answer only then)."""
    headers = response.headers
    if close and "Connection" not in headers:
        headers["Connection"] = "close"
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = "\r\n".join(lines)
    breaks = len(lines) - 1  # only the lane's own line ends may be there
    if head.count("\r") != breaks or head.count("\n") != breaks or "\x00" in head:
        raise NotForTheLane("a control character in the head")
    body = b"" if response.status in _EMPTY_BODY else bytes(response.body or b"")
    return head.encode("utf-8") + b"\r\n\r\n" + body
