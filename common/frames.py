"""Length-prefixed frames on an asyncio stream transport: the call link's wire format.

A frame is 4 bytes of length (big-endian) and that many bytes. This is all the framing
the call link needs (agent/call_link.py, manager/cluster/call_link.py): its messages
are protobufs that carry their own tags, and TLS below does the rest. On gRPC the same
message costs each side about three times the CPU (bench/grpc_floor.py), which is what
the link is for.

Protocol callbacks rather than streams (StreamReader/Writer): a frame is handled in the
very callback that read it, without a task switch per message.
"""

from __future__ import annotations

import asyncio
import socket

HEADER = 4
# The call link's opening: the manager's first frame is HELLO + the node's ID; the
# agent's is OK, or NO + why (and it closes).
HELLO = b"flock-calls/1 "
OK = b"ok"
NO = b"no "
# A peer gone without a word (its machine off, a cable out) is noticed as gRPC's
# keepalive notices it on the channel beside the link (20 s, then 10 s for the answer):
# TCP keepalive probes after 20 s idle, and unacknowledged data, give up within 30 s.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 20, 5, 2
USER_TIMEOUT_MS = 30_000
# A frame larger than this ends the connection (as gRPC refuses a message over
# protos.limits.MAX_MESSAGE): a peer that claims more is broken or hostile, and
# buffering for it would be the manager's or the agent's memory.
MAX_FRAME = 64 << 20


class FrameError(Exception):
    """The peer broke the framing; the connection cannot go on."""


class FramedProtocol(asyncio.Protocol):
    """Calls `frame_received` with each whole frame. With `answers_wait_reads`, writes
    that wait pause reading: a peer that does not read its answers stops being read,
    instead of piling them up here. Only the answering end may do so: were both to, each
    could stop reading while waiting for the other to read.
    """

    answers_wait_reads = False

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        keep_alive(transport.get_extra_info("socket"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        if not buffer and len(data) >= HEADER:
            # The usual case: a whole frame alone in one read, taken without the buffer.
            end = HEADER + int.from_bytes(data[:HEADER], "big")
            if end == len(data):
                self._frame(data[HEADER:], end - HEADER)
                return
        buffer += data
        while len(buffer) >= HEADER:
            size = int.from_bytes(buffer[:HEADER], "big")
            if len(buffer) < HEADER + size:
                if size > MAX_FRAME:
                    self._frame(b"", size)  # refuse it now, not once it has arrived
                break
            frame = bytes(buffer[HEADER:HEADER + size])
            del buffer[:HEADER + size]
            self._frame(frame, size)
            if self.transport is None or self.transport.is_closing():
                return

    def _frame(self, frame: bytes, size: int) -> None:
        if size > MAX_FRAME:
            self.broken(FrameError(f"a frame of {size} bytes, over the {MAX_FRAME} allowed"))
            return
        try:
            self.frame_received(frame)
        except FrameError as exc:
            self.broken(exc)

    def frame_received(self, frame: bytes) -> None:
        """One whole frame. Raise FrameError when it makes no sense."""
        raise NotImplementedError

    def broken(self, error: FrameError) -> None:
        """The peer broke the protocol: the connection ends (connection_lost follows)."""
        self._buffer.clear()
        if self.transport is not None:
            self.transport.abort()

    def write_frame(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(len(frame).to_bytes(HEADER, "big") + frame)

    def pause_writing(self) -> None:
        if self.answers_wait_reads and self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if (self.answers_wait_reads and self.transport is not None
                and not self.transport.is_closing()):
            self.transport.resume_reading()


def keep_alive(sock) -> None:
    """Probe an idle connection, and give up on unacknowledged data, as said above; a
    socket without these options (not TCP, another system) is left as it is."""
    if sock is None:
        return
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_PROBES), ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS)):
        if hasattr(socket, name):
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    for level, option, value in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError:
            return
