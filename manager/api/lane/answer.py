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


def head_fields(response: web.Response, method: str) -> None:
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
        size = len(body or b"")
        # A HEAD answer says the length its GET would have, or none without a body.
        if "Content-Length" not in headers and (size or method != "HEAD"):
            headers["Content-Length"] = str(size)
        if size and method != "HEAD":
            headers.setdefault("Content-Type", "application/octet-stream")
    if "Date" not in headers:
        headers["Date"] = rfc822_formatted_time()
    headers.setdefault("Server", SERVER_SOFTWARE)


def answer_bytes(response: web.Response, close: bool, method: str) -> bytes:
    """The status line, headers and body (none for HEAD); `Connection: close` when the
    lane closes the connection after it (aiohttp says so on an HTTP/1.1 answer only
    then)."""
    headers = response.headers
    if close and "Connection" not in headers:
        headers["Connection"] = "close"
    lines = [f"HTTP/1.1 {response.status} {response.reason}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    head = "\r\n".join(lines)
    breaks = len(lines) - 1  # only the lane's own line ends may be there
    if head.count("\r") != breaks or head.count("\n") != breaks or "\x00" in head:
        raise NotForTheLane("a control character in the head")
    if response.status in _EMPTY_BODY or method == "HEAD":
        return head.encode("utf-8") + b"\r\n\r\n"
    return head.encode("utf-8") + b"\r\n\r\n" + bytes(response.body or b"")
