"""Reading one HTTP/1.1 request head for the hot lane, strictly.

Pure: bytes in, a Head (or a word on why not) out. The lane takes only heads it fully
understands; anything else, however legal, is for aiohttp, which answers it as it always
has. So what is refused here is never an error to the client: obsolete line folding,
chunked or `Expect` bodies, an upgrade, `Connection` other than keep-alive, HTTP/1.0,
bytes that are not ASCII, a length that is not plain digits, a body past BODY_LIMIT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

END = b"\r\n\r\n"
HEAD_LIMIT = 16 << 10  # longer heads are aiohttp's (it refuses past 8190 bytes a line)
BODY_LIMIT = 1 << 20   # larger bodies are aiohttp's, which can stream them to a node
NEED_MORE = "need more"
_METHODS = (b"GET ", b"POST ", b"HEAD ", b"DELETE ")  # connection.ROUTES' methods
_LONGEST = max(_METHODS, key=len)
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # in a value: only tab passes
# Headers whose presence means a request the lane does not take.
_REFUSED = frozenset({"transfer-encoding", "expect", "upgrade"})


@dataclass(frozen=True, slots=True)
class Head:
    method: str
    path: str          # as sent, without the query
    query: str         # as sent, without the `?`
    headers: tuple[tuple[str, str], ...]
    length: int        # of the body that follows
    size: int          # of the head, blank line included


def parse_head(data: bytes | bytearray) -> Head | str:
    """The head at the start of `data`; NEED_MORE when it is not all there yet; any
    other string says why the lane leaves this request to aiohttp."""
    # Decided on the first bytes where they can: a client waiting on something that is
    # no request of ours (a TLS hello on the plain port, bare LF line ends) must get
    # aiohttp's answer now, not once a blank line that may never come is in.
    start = bytes(data[:len(_LONGEST)])
    if not any(method.startswith(start[:len(method)]) for method in _METHODS):
        return "not a GET, POST, HEAD or DELETE"
    end = data.find(END, 0, HEAD_LIMIT + len(END))
    raw = bytes(data[:end if end >= 0 else HEAD_LIMIT + len(END)])
    if not raw.isascii():
        return "bytes past ASCII"
    if raw.count(b"\n") != raw.count(b"\r\n"):
        return "a line not ended by CRLF"
    if end < 0:
        return NEED_MORE if len(data) <= HEAD_LIMIT else "head too long"
    lines = raw.decode("ascii").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "HTTP/1.1" or not parts[1].startswith("/"):
        return "not an HTTP/1.1 origin-form request line"
    method, target = parts[0], parts[1]
    path, _, query = target.partition("?")
    if "#" in target or not method.isupper():
        return "fragment or odd method"
    headers = []
    length = None
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or _NAME.fullmatch(name) is None or _CONTROL.search(value):
            return "malformed header line"
        value = value.strip(" \t")
        lower = name.lower()
        if lower in _REFUSED:
            return f"{lower} header"
        if lower == "connection" and value.lower() != "keep-alive":
            return "connection header"
        if lower == "content-length":
            if length is not None or not value.isdigit():
                return "content-length not one plain number"
            length = int(value)
        headers.append((name, value))
    if (length or 0) > BODY_LIMIT:
        return "body past the lane's limit"
    return Head(method, path, query, tuple(headers), length or 0, end + len(END))
