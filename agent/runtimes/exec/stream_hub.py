"""The shim's side of attach (see attach_socket for the protocol): it serves the attach
socket, copies the container's output to every attached client and their stdin into the
container. Everything is non-blocking on the shim's one selector, so a slow client never
stalls the container or its log: a client that falls too far behind is dropped."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import socket
import time

from flock.agent.runtimes.exec.tty import set_winsize
from flock.docker_compat.stdcopy import STDERR, STDOUT, frame

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
CLIENT_BACKLOG = 8 << 20  # output bytes a client may fall behind before it is dropped
STDIN_BACKLOG = 1 << 20  # stdin bytes buffered before clients are no longer read
HELLO_MAX = 64 << 10


class Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.hello = b""
        self.attached = False
        self.streams: set[int] = set()
        self.stdin = False
        self.reading = True
        self.out = bytearray()
        self.events = 0


class StreamHub:
    """Attach clients, the container's stdin, its TTY size. Call `handle` for the
    selector keys whose data is this hub's callback."""

    def __init__(self, sel: selectors.BaseSelector, listener: socket.socket, *, tty: bool,
                 stdin_fd: int | None, stdin_once: bool, tty_fd: int | None) -> None:
        self.sel = sel
        self.listener = listener
        self.tty = tty
        self.stdin_fd = stdin_fd
        self.stdin_once = stdin_once
        self.tty_fd = tty_fd
        self.stdin_buf = bytearray()
        self.stdin_closing = False
        self.stdin_registered = False
        self.clients: list[Client] = []
        self.attaches = 0
        if stdin_fd is not None:
            os.set_blocking(stdin_fd, False)
        sel.register(listener, READ, self._accept)

    # --- waiting for the attaches made before `start` --------------------------------
    def hold(self, count: int, timeout: float) -> None:
        """Let `count` attaches arrive before the command runs, so none misses output."""
        deadline = time.monotonic() + timeout
        while self.attaches < count and time.monotonic() < deadline:
            for key, mask in self.sel.select(0.05):
                key.data(mask)

    # --- clients ---------------------------------------------------------------------
    def _accept(self, mask: int) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        conn.setblocking(False)
        client = Client(conn)
        self.clients.append(client)
        self._update(client)

    def _update(self, client: Client) -> None:
        """(Re-)register the client for what it needs now: reading while it may send
        and stdin has room, writing while output is queued."""
        room = len(self.stdin_buf) < STDIN_BACKLOG or not client.attached
        events = (READ if client.reading and room else 0) | (WRITE if client.out else 0)
        if events == client.events:
            return
        if client.events and events:
            self.sel.modify(client.sock, events, lambda m, c=client: self._client_event(c, m))
        elif events:
            self.sel.register(client.sock, events, lambda m, c=client: self._client_event(c, m))
        else:
            self.sel.unregister(client.sock)
        client.events = events

    def _drop(self, client: Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            if client.events:
                self.sel.unregister(client.sock)
            client.sock.close()
            if client.stdin and self.stdin_once:
                self.close_stdin()

    def _client_event(self, client: Client, mask: int) -> None:
        if mask & READ:
            self._client_read(client)
        if mask & WRITE and client in self.clients:
            self._client_write(client)

    def _client_read(self, client: Client) -> None:
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        if not client.attached:
            rest = self._read_hello(client, data)
            if rest is None:
                return
            self._feed_stdin(client, rest)
        elif not data:
            self._input_ended(client)
        else:
            self._feed_stdin(client, data)
        if client in self.clients:
            self._update(client)

    def _feed_stdin(self, client: Client, data: bytes) -> None:
        if data and client.stdin and self.stdin_fd is not None and not self.stdin_closing:
            self.stdin_buf += data
            self._want_stdin_write()

    def _read_hello(self, client: Client, data: bytes) -> bytes | None:
        """The bytes after the hello line, or None when there is nothing more to do."""
        client.hello += data
        if b"\n" not in client.hello:
            if not data or len(client.hello) > HELLO_MAX:
                self._drop(client)
            return None
        line, _, rest = client.hello.partition(b"\n")
        try:
            hello = json.loads(line)
        except ValueError:
            self._drop(client)
            return None
        if "resize" in hello:
            self._resize(client, hello["resize"])
            return None
        client.attached = True
        client.stdin = bool(hello.get("stdin")) and self.stdin_fd is not None
        client.streams = {s for s, key in ((STDOUT, "stdout"), (STDERR, "stderr"))
                          if hello.get(key)}
        self.attaches += 1
        return rest

    def _input_ended(self, client: Client) -> None:
        """A half-close ends the client's stdin; a client that reads nothing is done."""
        client.reading = False
        if client.stdin and self.stdin_once:
            self.close_stdin()
        if not client.streams:
            self._drop(client)

    def _client_write(self, client: Client) -> None:
        try:
            sent = client.sock.send(client.out)
        except BlockingIOError:
            return
        except OSError:
            self._drop(client)
            return
        del client.out[:sent]
        self._update(client)

    def _resize(self, client: Client, size: object) -> None:
        answer: dict = {}
        try:
            height, width = (int(v) for v in size)  # type: ignore[union-attr]
            if self.tty_fd is not None:
                set_winsize(self.tty_fd, height, width)
        except (TypeError, ValueError, OSError) as exc:
            answer = {"error": f"cannot resize the TTY: {exc}"}
        with contextlib.suppress(OSError):
            client.sock.setblocking(True)
            client.sock.sendall(json.dumps(answer).encode() + b"\n")
        self._drop(client)

    # --- output ----------------------------------------------------------------------
    def broadcast(self, stream: int, data: bytes) -> None:
        if not self.clients:
            return
        framed = frame(STDOUT if self.tty else stream, data)
        for client in list(self.clients):
            if client.attached and (stream in client.streams or self.tty and client.streams):
                if len(client.out) > CLIENT_BACKLOG:
                    self._drop(client)
                    continue
                client.out += framed
                self._update(client)

    # --- stdin -----------------------------------------------------------------------
    def _want_stdin_write(self) -> None:
        if self.stdin_fd is None:
            return
        if self.stdin_buf and not self.stdin_registered:
            self.sel.register(self.stdin_fd, WRITE, self._write_stdin)
            self.stdin_registered = True
        elif not self.stdin_buf and self.stdin_registered:
            self.sel.unregister(self.stdin_fd)
            self.stdin_registered = False
        if not self.stdin_buf and self.stdin_closing:
            self._really_close_stdin()

    def _write_stdin(self, mask: int) -> None:
        assert self.stdin_fd is not None
        try:
            written = os.write(self.stdin_fd, self.stdin_buf)
        except BlockingIOError:
            return
        except OSError as exc:  # the container closed its stdin or exited
            if exc.errno not in (errno.EPIPE, errno.EIO, errno.EBADF):
                raise
            self.stdin_buf.clear()
            self.stdin_closing = True
            written = 0
        del self.stdin_buf[:written]
        self._want_stdin_write()
        for client in self.clients:
            self._update(client)

    def close_stdin(self) -> None:
        """EOF for the container once what was sent is written (StdinOnce)."""
        if self.stdin_fd is None or self.tty:
            return
        self.stdin_closing = True
        self._want_stdin_write()

    def _really_close_stdin(self) -> None:
        if self.stdin_fd is None:
            return
        if self.stdin_registered:
            self.sel.unregister(self.stdin_fd)
            self.stdin_registered = False
        os.close(self.stdin_fd)
        self.stdin_fd = None

    # --- the end ---------------------------------------------------------------------
    def finish(self, folder_socket: os.PathLike, timeout: float = 2.0) -> None:
        """The container ended: flush what clients are owed, then close everything."""
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(self.listener)
        self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(folder_socket)
        deadline = time.monotonic() + timeout
        while any(c.out for c in self.clients) and time.monotonic() < deadline:
            for key, mask in self.sel.select(0.05):
                if key.fd != self.stdin_fd:
                    key.data(mask)
        for client in list(self.clients):
            self._drop(client)
        self.stdin_once = False
        self.stdin_buf.clear()
        self.stdin_closing = True
        self._really_close_stdin()
