"""Free TCP ports for what the tests start, one place for all of them.

A port is found by binding port 0 and letting it go; its user (often a child process
still starting) binds it later. The kernel may hand the same port out again in between:
a CI replica saw `flock join` and `flock manage`, given their ports a moment apart by
the same test, get one port, and the agent fail to bind it. So a port is never handed
out twice by this process."""

from __future__ import annotations

import socket

_GIVEN: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now on `host`, and not handed out before by this
    process."""
    for _ in range(1000):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port
    raise RuntimeError("no free port that was not handed out already")
