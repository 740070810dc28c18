"""Reading and writing a non-blocking file descriptor (a pty master) on the event loop,
with a pty's EIO (the other side is closed) read as the end of the stream."""

from __future__ import annotations

import asyncio
import errno
import os


class FdStream:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.loop = asyncio.get_running_loop()

    async def _ready(self, add, remove) -> None:
        ready = self.loop.create_future()
        add(self.fd, lambda: None if ready.done() else ready.set_result(None))
        try:
            await ready
        finally:
            remove(self.fd)

    async def read(self, size: int = 65536) -> bytes:
        """The next bytes; b"" at the end."""
        while True:
            try:
                return os.read(self.fd, size)
            except BlockingIOError:
                await self._ready(self.loop.add_reader, self.loop.remove_reader)
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return b""
                raise

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                await self._ready(self.loop.add_writer, self.loop.remove_writer)
