"""The HTTP/1.1 side of the agent's bridge: heads, bodies, framing, against small
unix-socket servers that answer the way engines do."""

from __future__ import annotations

import asyncio

import pytest

from flock.agent import http_bridge
from flock.agent.http_bridge import BridgeError, ResponseError
from flock.protos import agent_pb2


def request(**fields) -> agent_pb2.DockerRequest:
    headers = [agent_pb2.Header(name=k, value=v) for k, v in fields.pop("headers", [])]
    return agent_pb2.DockerRequest(headers=headers, **fields)


def test_request_head_has_version_prefix_query_and_own_hop_headers():
    req = request(method="GET", path="/containers/json", query="all=1", api_version="1.41",
                  headers=[("User-Agent", "x"), ("Connection", "keep-alive"), ("Host", "h")])
    head = http_bridge.build_request_head(req, "none").decode()
    assert head.startswith("GET /v1.41/containers/json?all=1 HTTP/1.1\r\nHost: docker\r\n")
    assert "User-Agent: x\r\n" in head and "keep-alive" not in head and "Host: h" not in head
    assert head.endswith("Connection: close\r\n\r\n")


def test_request_head_for_bodies_and_hijack():
    post = http_bridge.build_request_head(request(method="POST", path="/x"), "none").decode()
    assert "Content-Length: 0\r\n" in post
    chunked = http_bridge.build_request_head(request(method="POST", path="/x"), "chunked")
    assert b"Transfer-Encoding: chunked\r\n" in chunked and b"Content-Length" not in chunked
    hijack = http_bridge.build_request_head(
        request(method="POST", path="/exec/1/start", hijack=True), "length", 17).decode()
    assert "Connection: Upgrade\r\nUpgrade: tcp\r\n" in hijack and "Content-Length: 17" in hijack


def test_request_line_is_ascii_whatever_the_names():
    # Names the manager did not encode (another gRPC client, an older manager) reach the
    # runtime percent-encoded, as the docker CLI sends them; the engine then answers its
    # own 400/404. Header values travel as UTF-8. A Latin-1 head raised on these.
    req = request(method="GET", path="/images/镜像ímage😀#/json",
                  query="filters=%7B%7D&x=镜", headers=[("X-Meta", "镜像")])
    head = http_bridge.build_request_head(req, "none")
    line = head.split(b"\r\n")[0].decode("ascii")
    assert line == ("GET /images/%E9%95%9C%E5%83%8F%C3%ADmage%F0%9F%98%80%23/json"
                    "?filters=%7B%7D&x=%E9%95%9C HTTP/1.1")
    assert "X-Meta: 镜像\r\n".encode() in head
    with pytest.raises(BridgeError, match="bad request method"):
        http_bridge.build_request_head(request(method="GÉT", path="/_ping"), "none")


@pytest.mark.parametrize("fields, message", [
    ({"method": "GET", "path": "containers"}, "must start with '/'"),
    ({"method": "GET", "path": "/a b"}, "whitespace"),
    ({"method": "G\r\nET", "path": "/a"}, "whitespace"),
    ({"method": "GET", "path": "/a", "headers": [("X", "a\r\nEvil: 1")]}, "bad request header"),
])
def test_request_head_refuses_injection(fields, message):
    with pytest.raises(BridgeError, match=message):
        http_bridge.build_request_head(request(**fields), "none")


def test_response_head_parsing():
    head = http_bridge.parse_response_head(
        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    assert head.status == 101 and head.reason == "UPGRADED"
    assert head.get("content-type") == "application/vnd.docker.raw-stream"
    with pytest.raises(ResponseError, match="bad status line"):
        http_bridge.parse_response_head(b"SSH-2.0-OpenSSH\r\n\r\n")
    with pytest.raises(ResponseError, match="bad header line"):
        http_bridge.parse_response_head(b"HTTP/1.1 200 OK\r\nnocolon\r\n\r\n")


def test_raw_stream_detection():
    hijack = request(method="POST", path="/a", hijack=True)
    plain = request(method="POST", path="/a")
    ok_raw = http_bridge.ResponseHead(200, "OK", [("Content-Type", "x")])
    ok_json = http_bridge.ResponseHead(404, "", [("Content-Length", "20")])
    assert http_bridge.is_raw_stream(hijack, http_bridge.ResponseHead(101, "", []))
    assert http_bridge.is_raw_stream(hijack, ok_raw)
    assert not http_bridge.is_raw_stream(hijack, ok_json)
    assert not http_bridge.is_raw_stream(plain, http_bridge.ResponseHead(101, "", []))


def feed(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_chunked_decoding_with_extensions_and_trailers():
    async def run():
        reader = feed(b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-T: 1\r\n\r\nNEXT")
        pieces = [p async for p in http_bridge.read_chunked(reader)]
        return b"".join(pieces), await reader.read()

    assert asyncio.run(run()) == (b"hello world", b"NEXT")


@pytest.mark.parametrize("raw, message", [
    (b"zz\r\nhello\r\n0\r\n\r\n", "bad chunk size"),
    (b"5\r\nhel", "closed the connection 2 bytes early"),
    (b"5\r\nhello", "chunk not followed by CRLF"),
])
def test_chunked_decoding_errors(raw, message):
    async def run():
        return [p async for p in http_bridge.read_chunked(feed(raw))]

    with pytest.raises(ResponseError, match=message):
        asyncio.run(run())


async def serve_once(path: str, answer: bytes, seen: list[bytes], echo: bool = False):
    """A unix server that records the request and writes `answer` (then echoes)."""
    async def handle(reader, writer):
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(answer)
        if echo:
            while data := await reader.read(1024):
                writer.write(data.upper())
        else:
            seen.append(await reader.read(1 << 16) if b"chunked" in seen[0] else b"")
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(handle, path)


async def frames_of(*frames):
    for frame in frames:
        yield frame


async def collect(path: str, *frames) -> tuple[int, bytes]:
    out = [f async for f in http_bridge.forward(path, frames_of(*frames))]
    return out[0].response.status, b"".join(f.data for f in out[1:])


def test_forward_chunked_answer_and_chunked_request(tmp_path):
    path = str(tmp_path / "s.sock")
    seen: list[bytes] = []

    async def run():
        server = await serve_once(
            path, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\n", seen)
        async with server:
            return await collect(
                path,
                agent_pb2.DockerFrame(request=request(method="POST", path="/build")),
                agent_pb2.DockerFrame(data=b"ctx"), agent_pb2.DockerFrame(close_write=True))

    assert asyncio.run(run()) == (200, b"abc")
    assert b"Transfer-Encoding: chunked" in seen[0]


def test_forward_old_style_hijack_with_a_body(tmp_path):
    path = str(tmp_path / "s.sock")
    seen: list[bytes] = []
    body = b'{"Tty":false}'

    async def run():
        server = await serve_once(path, b"HTTP/1.1 200 OK\r\n\r\n", seen, echo=True)
        async with server:
            req = request(method="POST", path="/exec/1/start", hijack=True,
                          headers=[("Content-Length", str(len(body)))])
            return await collect(
                path, agent_pb2.DockerFrame(request=req),
                agent_pb2.DockerFrame(data=body + b"stdin"),
                agent_pb2.DockerFrame(close_write=True))

    status, output = asyncio.run(run())
    assert status == 200 and output == b'{"TTY":FALSE}STDIN'  # body, then raw bytes, echoed


def test_forward_without_a_runtime_answers_a_docker_error(tmp_path):
    path = str(tmp_path / "absent.sock")
    status, raw = asyncio.run(collect(
        path, agent_pb2.DockerFrame(request=request(method="GET", path="/info")),
        agent_pb2.DockerFrame(close_write=True)))
    assert status == 500 and b"Cannot connect to the runtime at" in raw


def test_forward_refuses_a_stream_without_a_request(tmp_path):
    with pytest.raises(BridgeError, match="first frame"):
        asyncio.run(collect(str(tmp_path / "x.sock"), agent_pb2.DockerFrame(data=b"x")))
