"""The hot lane's head reader (manager/api/lane/head.py): what it takes, and that
everything else is left to aiohttp (a reason string), never refused to the client."""

from __future__ import annotations

import pytest

from flock.manager.api.lane.head import BODY_LIMIT, HEAD_LIMIT, NEED_MORE, Head, parse_head

CREATE = (b"POST /v1.41/containers/create?name=web%201 HTTP/1.1\r\nHost: docker\r\n"
          b"Content-Type: application/json\r\nContent-Length: 17\r\n\r\n{\"Image\":\"busy\"}\n")


def test_a_whole_head_is_read_with_its_length_and_size():
    head = parse_head(CREATE)
    assert isinstance(head, Head)
    assert (head.method, head.path, head.query) == ("POST", "/v1.41/containers/create",
                                                    "name=web%201")
    assert head.headers == (("Host", "docker"), ("Content-Type", "application/json"),
                            ("Content-Length", "17"))
    assert head.length == 17
    assert CREATE[head.size:] == b"{\"Image\":\"busy\"}\n"


def test_a_head_without_body_has_length_zero():
    head = parse_head(b"POST /containers/abc/start HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(head, Head) and head.length == 0 and head.query == ""


@pytest.mark.parametrize("cut", [0, 1, 20, CREATE.index(b"\r\n\r\n") + 3])
def test_a_head_not_all_there_waits(cut):
    assert parse_head(CREATE[:cut]) is NEED_MORE


@pytest.mark.parametrize("head", [
    b"POST /containers/create HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST /containers/create HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    b"GET /containers/json HTTP/1.1\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n",
    b"GET /containers/json HTTP/1.1\r\nConnection: close\r\n\r\n",
    b"GET /containers/json HTTP/1.0\r\n\r\n",
    b"GET http://docker/containers/json HTTP/1.1\r\n\r\n",
    b"GET /containers/json#top HTTP/1.1\r\n\r\n",
    b"GET /containers/json HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n",
    b"GET /containers/json HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
    b"GET /containers/json HTTP/1.1\r\nBad Name: 1\r\n\r\n",
    b"GET /containers/json HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",
    b"POST /containers/create HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n",
    b"POST /containers/create HTTP/1.1\r\nContent-Length: +2\r\n\r\n",
    b"POST /containers/create HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (BODY_LIMIT + 1),
    b"get /containers/json HTTP/1.1\r\n\r\n",
    b"GET  /containers/json HTTP/1.1\r\n\r\n",
])
def test_what_the_lane_does_not_take_is_left_with_a_reason(head):
    found = parse_head(head)
    assert isinstance(found, str) and found is not NEED_MORE, found


@pytest.mark.parametrize("start", [
    bytes.fromhex("160301020001"),          # a TLS hello on the plain port
    b"PUT", b"PATCH /containers/x HTTP/1.1",  # methods the lane has no route for
    b"GET /containers/json HTTP/1.1\nHost: x\n",  # bare LF line ends
    b"GET /containers/j\xffson",
])
def test_what_cannot_become_a_lane_request_is_left_at_once(start):
    """Without waiting for a blank line that may never come: the client may be
    waiting for the answer aiohttp gives such bytes."""
    found = parse_head(start)
    assert isinstance(found, str) and found is not NEED_MORE, found


@pytest.mark.parametrize("start", [b"G", b"GE", b"GET", b"P", b"POS", b"POST", b"DEL",
                                   b"GET /containers/json HTTP/1.1\r"])
def test_a_method_or_line_still_coming_waits(start):
    assert parse_head(start) is NEED_MORE


def test_keep_alive_is_taken_and_an_overlong_head_is_left():
    head = parse_head(b"GET /containers/json HTTP/1.1\r\nConnection: Keep-Alive\r\n\r\n")
    assert isinstance(head, Head)
    long = b"GET /containers/json HTTP/1.1\r\nX-Pad: " + b"a" * HEAD_LIMIT
    assert parse_head(long) == "head too long"
    assert parse_head(long[:HEAD_LIMIT]) is NEED_MORE
