"""The Engine's multiplexed stream format (Go's `stdcopy`): without a TTY, attach, exec
and logs output is framed with an 8-byte header `[stream, 0, 0, 0, size (big-endian)]`
so that one byte stream carries stdout and stderr apart."""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR = 0, 1, 2
HEADER = struct.Struct(">BxxxL")


def frame(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """(stream, payload size) of an 8-byte frame header."""
    return HEADER.unpack(header)
