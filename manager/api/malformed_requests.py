"""What the manager logs when a client sends something that is not HTTP it can parse.

aiohttp refuses such a request itself (a 400 before any handler runs: a raw non-ASCII
byte in the request line, a method it does not know after the first request, a header
line past its limit) and logs it through `aiohttp.server` as an ERROR with a traceback,
as if the manager had failed. It did not: the client did. So those records become one
WARNING line naming the client and what was wrong, and a real failure of the server
still logs as before.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

SERVER_LOGGER = "aiohttp.server"


class MalformedRequestFilter(logging.Filter):
    """Rewrites aiohttp's record of a client's unparsable request in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and record.levelno > logging.WARNING:
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = "refused a request from %s that is not valid HTTP: %s"
            record.args = (remote, exc.message or type(exc).__name__)
            record.exc_info = record.exc_text = None
        return True


def install() -> None:
    """Once per process (a second Manager in the same process adds nothing)."""
    logger = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, MalformedRequestFilter) for f in logger.filters):
        logger.addFilter(MalformedRequestFilter())
