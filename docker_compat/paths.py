"""Docker API request paths that name exactly what they were built from.

A name, ID or reference pasted into a path as it is can turn one endpoint into another:
`busybox/json?x=` placed in `/images/{name}/history` reads as an inspect of busybox.
So a value goes into a path as one percent-encoded segment (the engine decodes it once,
as it decodes what the docker CLI and the SDK send), a query is urlencoded, and what
reaches a runtime's socket is ASCII, as an HTTP request line must be.
"""

from __future__ import annotations

import urllib.parse

# Printable ASCII that may stand in a request target as it is: all but the space (the
# bridge refuses it) and `#` (a fragment to aiohttp, part of the path to Go: %23 is
# the same path to both).
_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")


def segment(value: str) -> str:
    """`value` as one path segment: `/`, `?`, `#`, `%` and non-ASCII percent-encoded."""
    return urllib.parse.quote(value, safe="")


def api_path(*parts: str) -> str:
    """("containers", ID, "start") -> "/containers/ID/start", each part one segment."""
    return "/" + "/".join(segment(part) for part in parts)


def ascii_target(text: str) -> str:
    """A path or query (encoded already, or meant to be) that an HTTP request line can
    carry: non-ASCII characters as their UTF-8 bytes percent-encoded, control
    characters and `#` likewise; escapes already there are kept as they are."""
    return urllib.parse.quote(text, safe=_TARGET_SAFE)
