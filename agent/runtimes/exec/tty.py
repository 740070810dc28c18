"""TTY sizes: the `h`/`w` query of the resize endpoints and the ioctl that applies them
(the kernel then sends SIGWINCH to the terminal's foreground process group)."""

from __future__ import annotations

import fcntl
import struct
import termios
from collections.abc import Mapping

from flock.agent.runtimes.exec.errors import bad_request


def set_winsize(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def requested_size(query: Mapping[str, str]) -> tuple[int, int]:
    """(height, width) from `?h=&w=`; the Engine refuses anything but numbers."""
    size = []
    for key in ("h", "w"):
        text = query.get(key, "")
        try:
            value = int(text)
        except ValueError:
            raise bad_request(f'invalid value for {key}: strconv.Atoi: parsing "{text}": '
                              f"invalid syntax") from None
        if not 0 <= value < 65536:
            raise bad_request(f"invalid value for {key}: {value} is out of range")
        size.append(value)
    return size[0], size[1]
