"""The Engine's multiplexed stream format (Go's `stdcopy`): without a TTY, attach, exec
and logs output is framed with an 8-byte header `[stream, 0, 0, 0, size (big-endian)]`
so that one byte stream carries stdout and stderr apart."""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR = 0, 1, 2
# The `stream` field of a json-file log line, as the stream it is framed on.
STREAM_IDS = {"stdout": STDOUT, "stderr": STDERR}
HEADER = struct.Struct(">BxxxL")


def frame(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """(stream, payload size) of an 8-byte frame header."""
    return HEADER.unpack(header)


def demux(raw: bytes) -> list[tuple[int, bytes]]:
    """The (stream, payload) frames of a multiplexed body, in order. A trailing frame that
    has not fully arrived yet is left out: a reader of a live stream calls again with
    more bytes rather than seeing half a payload."""
    frames = []
    offset = 0
    while offset + HEADER.size <= len(raw):
        stream, size = HEADER.unpack_from(raw, offset)
        end = offset + HEADER.size + size
        if end > len(raw):
            break
        frames.append((stream, bytes(raw[offset + HEADER.size:end])))
        offset = end
    return frames
