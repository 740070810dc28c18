"""The agent's bridge when a runtime refuses a request before reading its body: it answers
and closes with the body unread, as dockerd does (Go's server reads at most 256 KB of
an unread body, then closes). The answer must still reach the manager whole; the rest
of the body is dropped."""

from __future__ import annotations

import asyncio

from flock.agent import http_bridge
from flock.protos import agent_pb2

ANSWER = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
          b"Content-Length: 50\r\nConnection: close\r\n\r\n"
          b'{"message":"bogus is not a valid change command"}\n')


async def refusing_runtime(path: str, read_first: int) -> asyncio.AbstractServer:
    """Reads the head and `read_first` body bytes, answers 400, closes."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(read_first)
        writer.write(ANSWER)
        await writer.drain()
        writer.close()

    return await asyncio.start_unix_server(handle, path)


async def frames(body_frames: int):
    yield agent_pb2.DockerFrame(request=agent_pb2.DockerRequest(
        method="POST", path="/images/create", query="fromSrc=-&changes=BOGUS"))
    for _ in range(body_frames):
        yield agent_pb2.DockerFrame(data=b"\x00" * http_bridge.MAX_FRAME)
        await asyncio.sleep(0)  # the runtime answers while the body still comes


def test_an_early_answer_is_relayed_whole(tmp_path):
    path = str(tmp_path / "runtime.sock")

    async def run() -> list[agent_pb2.DockerFrame]:
        server = await refusing_runtime(path, read_first=1 << 16)
        async with server:
            out = []
            async for frame in http_bridge.forward(path, frames(body_frames=10)):
                out.append(frame)
                # The manager takes a moment to pass the head on (a gRPC write): by
                # then the runtime has closed and the connection is reset.
                await asyncio.sleep(0.2)
            return out

    out = asyncio.run(asyncio.wait_for(run(), 30))
    assert out[0].response.status == 400
    assert b"".join(f.data for f in out[1:]) == ANSWER.split(b"\r\n\r\n", 1)[1]
