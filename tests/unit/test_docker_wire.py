"""The Docker wire facts in the ground floor (flock.docker_compat), which the manager,
the agents' runtimes, the demo and the tests all read from one place."""

from __future__ import annotations

from flock.docker_compat.api_version import API_VERSION, MIN_API_VERSION, version_refusal
from flock.docker_compat.hop_headers import HOP_BY_HOP, HOP_REQUEST
from flock.docker_compat.stdcopy import STDERR, STDOUT, demux, frame


def test_demux_splits_a_body_into_its_frames():
    body = frame(STDOUT, b"out\n") + frame(STDERR, b"") + frame(STDERR, b"err\n" * 3)
    assert demux(body) == [(STDOUT, b"out\n"), (STDERR, b""), (STDERR, b"err\n" * 3)]
    assert demux(b"") == []


def test_demux_leaves_out_a_frame_that_has_not_fully_arrived():
    """A live stream's reader (logs -f, attach) calls again with more bytes: half a
    header or half a payload is not a frame yet."""
    whole = frame(STDOUT, b"line1\n")
    nxt = frame(STDERR, b"line2\n")
    assert demux(whole + nxt[:5]) == [(STDOUT, b"line1\n")]  # half a header
    assert demux(whole + nxt[:10]) == [(STDOUT, b"line1\n")]  # half a payload
    assert demux(whole + nxt) == [(STDOUT, b"line1\n"), (STDERR, b"line2\n")]


def test_version_refusal_in_dockerds_words():
    # moby api/server/middleware/version.go, versionUnsupportedError
    assert version_refusal("") is None  # no /vX.Y prefix
    assert version_refusal(MIN_API_VERSION) is None and version_refusal(API_VERSION) is None
    assert version_refusal("1.9") == (
        "client version 1.9 is too old. Minimum supported API version is 1.24, please "
        "upgrade your client to a newer version")  # compared as numbers: 1.9 < 1.24
    assert version_refusal("1.99", maximum="1.43") == (
        "client version 1.99 is too new. Maximum supported API version is 1.43")
    assert version_refusal("1.x") is not None  # not a version: refused as too old


def test_a_forwarder_drops_every_per_hop_header():
    assert HOP_BY_HOP <= HOP_REQUEST
    assert {"connection", "keep-alive", "transfer-encoding", "content-length"} <= HOP_BY_HOP
    assert {"host", "upgrade", "te", "trailer", "expect", "proxy-connection"} <= HOP_REQUEST
