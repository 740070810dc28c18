"""A TLS client connection whose two directions live apart, as a Docker client needs them.

The docker CLI ends its input on a hijacked connection (attach, `exec -i`, `run -i`) with
Go's tls.Conn.CloseWrite: a close_notify, after which it keeps reading the container's
output. asyncio's TLS transport cannot do that (can_write_eof() is False, and a
shutdown ends both directions), and a write that fails there tears down reading too,
losing an answer the engine sent before it stopped reading a body it refused. So the
agent speaks TLS to a tcp:// engine through this transport instead: an ssl.SSLObject
over memory buffers, one task reading the socket, one flushing it. write_eof() sends
close_notify and reading goes on; a failed write is remembered and raised by the next
write, while reading goes on until the engine closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

RECV_SIZE = 1 << 16
HIGH_WATER = 1 << 16  # encrypted bytes waiting before the writer is asked to pause
LOW_WATER = 1 << 14
HANDSHAKE_TIMEOUT = 30.0
CLOSE_GRACE = 5.0  # seconds for what is written to go out once the bridge closes


class TLSStream(asyncio.Transport):
    """An asyncio transport over TLS for one protocol (e.g. a StreamReaderProtocol)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 context: ssl.SSLContext, host: str) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._context = context
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_hostname=host)
        self._protocol: asyncio.Protocol | None = None
        self._reading = asyncio.Event()
        self._reading.set()
        self._reader: asyncio.Task | None = None
        self._flusher: asyncio.Task | None = None
        self._write_error: OSError | None = None
        self._write_paused = False
        self._eof_sent = False
        self._closing = False
        self._lost = False

    @classmethod
    async def open(cls, host: str, port: int, context: ssl.SSLContext,
                   protocol_factory) -> TLSStream:
        """Connect, finish the handshake (OSError or ssl.SSLError when it fails), then
        hand the connection to a new protocol."""
        loop = asyncio.get_running_loop()
        sock = await _connected(loop, host, port)
        try:
            stream = cls(loop, sock, context, host)
            await asyncio.wait_for(stream._handshake(), HANDSHAKE_TIMEOUT)
        except BaseException:
            sock.close()
            raise
        stream.set_protocol(protocol_factory())
        stream._protocol.connection_made(stream)
        stream._reader = loop.create_task(stream._read_loop())
        return stream

    async def _handshake(self) -> None:
        while True:
            try:
                self._ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._send_pending()
                data = await self._loop.sock_recv(self._sock, RECV_SIZE)
                if not data:
                    raise ConnectionResetError(
                        "the engine closed the connection during the TLS handshake") from None
                self._incoming.write(data)
        await self._send_pending()

    async def _send_pending(self) -> None:
        while data := self._outgoing.read(RECV_SIZE):
            await self._loop.sock_sendall(self._sock, data)

    # reading

    async def _read_loop(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                await self._reading.wait()
                data = await self._loop.sock_recv(self._sock, RECV_SIZE)
                if not data:
                    break
                self._incoming.write(data)
                more = self._deliver()
                self._kick()  # TLS 1.3 may answer what it read (key updates)
                if not more:
                    break
        except asyncio.CancelledError:
            return
        except (OSError, ssl.SSLError) as exc:
            error = exc
        if error is not None:
            self._connection_lost(error)
        elif not self._protocol.eof_received():
            self.close()

    def _deliver(self) -> bool:
        """Hand the decrypted bytes on; False once the engine sent close_notify."""
        while True:
            try:
                chunk = self._ssl.read(RECV_SIZE)
            except ssl.SSLWantReadError:
                return True
            except ssl.SSLZeroReturnError:
                return False
            if not chunk:
                return False
            self._protocol.data_received(chunk)

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    # writing

    def write(self, data: bytes) -> None:
        if self._write_error is not None:
            raise self._write_error
        if self._eof_sent or self._closing:
            raise ConnectionResetError("the TLS stream to the engine is closed for writing")
        if data:
            self._ssl.write(data)
            self._kick()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        """close_notify: the engine sees the end of our input; its output keeps coming."""
        if self._eof_sent or self._closing:
            return
        self._eof_sent = True
        with contextlib.suppress(ssl.SSLWantReadError):
            self._ssl.unwrap()
        self._kick()

    def _kick(self) -> None:
        if self._outgoing.pending and (self._flusher is None or self._flusher.done()):
            self._flusher = self._loop.create_task(self._flush())
        if self._outgoing.pending > HIGH_WATER and not self._write_paused:
            self._write_paused = True
            self._protocol.pause_writing()

    async def _flush(self) -> None:
        """The one writer of the socket, so records go out in order."""
        try:
            while data := self._outgoing.read(RECV_SIZE):
                await self._loop.sock_sendall(self._sock, data)
                if self._write_paused and self._outgoing.pending <= LOW_WATER:
                    self._resume_writing()
        except OSError as exc:
            self._write_error = exc  # the engine stopped reading; its answer still comes
            self._outgoing.read()
        self._resume_writing()

    def _resume_writing(self) -> None:
        if self._write_paused:
            self._write_paused = False
            self._protocol.resume_writing()

    def get_write_buffer_size(self) -> int:
        return self._outgoing.pending

    # the rest of a transport

    def get_extra_info(self, name: str, default=None):
        info = {"peername": self._peer(), "sslcontext": self._context,
                "ssl_object": self._ssl, "peercert": self._ssl.getpeercert()}
        return info.get(name, default)  # no "socket": it is not for others to write

    def _peer(self):
        with contextlib.suppress(OSError):
            return self._sock.getpeername()
        return None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; what is already written still goes out, then the socket closes."""
        if self._closing:
            return
        self._closing = True
        self._loop.create_task(self._finish(None))

    def abort(self) -> None:
        self._closing = True
        self._connection_lost(None)

    async def _finish(self, error: BaseException | None) -> None:
        """An engine that stopped reading gets CLOSE_GRACE seconds, not forever."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher}, timeout=CLOSE_GRACE)
        self._connection_lost(error)

    def _connection_lost(self, error: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        current = asyncio.current_task()
        for task in (self._reader, self._flusher):
            if task is not None and task is not current:
                task.cancel()
        self._sock.close()
        self._protocol.connection_lost(error)


async def _connected(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    """A non-blocking socket connected to the first of `host`'s addresses that answers
    (localhost may be ::1 first while the engine listens on 127.0.0.1)."""
    error: OSError | None = None
    for family, kind, proto, _, address in await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error or OSError(f"no address for {host}")
