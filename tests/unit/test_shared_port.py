"""Which protocol a connection's first bytes ask for (manager/api/shared_port.py)."""

from __future__ import annotations

import pytest

from flock.manager.api.shared_port import GRPC, HTTP, PREFACE, classify


def test_the_http2_preface_is_grpc_once_whole():
    assert classify(PREFACE) == GRPC
    assert classify(PREFACE + b"\x00\x00\x12\x04") == GRPC  # the SETTINGS frame follows


@pytest.mark.parametrize("cut", [0, 1, 3, 14, 18, len(PREFACE) - 1])
def test_a_prefix_of_the_preface_waits_for_more(cut):
    assert classify(PREFACE[:cut]) is None


@pytest.mark.parametrize("head", [b"GET /_ping HTTP/1.1\r\n", b"POST /v1.41/containers",
                                  b"PRI * HTTP/1.1\r\n", b"\x16\x03\x01\x02\x00",
                                  b"PUT", b"PRI * HTTP/2.0\r\n\r\nSX"])
def test_anything_else_is_http(head):
    """Docker API requests, a near miss, and a TLS ClientHello on a plain listener (which
    aiohttp answers with a 400, telling the client it is not talking TLS)."""
    assert classify(head) == HTTP
