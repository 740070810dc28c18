"""Where a container's shim listens for attaches, and how to reach it.

The socket lives in the container's folder (`attach.sock`), owned by the shim, so a
runtime started after the container (an agent restart) attaches to it just the same.
Unix socket paths are limited to 107 bytes and state folders can be deep, so a long path
is reached through `/proc/self/fd/<folder fd>/attach.sock`.

Protocol, one connection per use. The client sends one JSON line:
- `{"stdin": b, "stdout": b, "stderr": b}` attaches: the shim then sends output frames in
  the Engine's multiplexed format (stream 1 stdout, 2 stderr; always 1 with a TTY) and
  takes every further byte as stdin, until the client half-closes; the shim closes the
  connection when the container has exited.
- `{"resize": [height, width]}` sets the TTY size; the shim answers one JSON line
  (`{}` or `{"error": ...}`) and closes.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
from collections.abc import Iterator

NAME = "attach.sock"
MAX_PATH = 100


def path(folder: pathlib.Path) -> pathlib.Path:
    return folder / NAME


@contextlib.contextmanager
def reachable(folder: pathlib.Path) -> Iterator[str]:
    """A path to the socket short enough for bind and connect, valid inside the block."""
    full = str(path(folder))
    if len(full.encode()) < MAX_PATH:
        yield full
        return
    fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{NAME}"
    finally:
        os.close(fd)


def listen(folder: pathlib.Path) -> socket.socket:
    """The shim's listening socket (any stale one from an earlier run replaced)."""
    path(folder).unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    with reachable(folder) as where:
        sock.bind(where)
    os.chmod(path(folder), 0o600)
    sock.listen(16)
    sock.setblocking(False)
    return sock
