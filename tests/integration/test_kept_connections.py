"""The agent's keep-alive client to its runtime (agent/kept_connections.py), against a
small HTTP/1.1 server on a unix socket that records what it was sent: connections are
kept and reused, a request the runtime may have seen is never sent twice, and every
way of framing an answer is read to its end."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib

import pytest

from flock.agent.engine_endpoint import Endpoint
from flock.agent.kept_connections import AnswerTooLarge, KeptConnections, RuntimeGone
from flock.agent.server import AgentService
from flock.manager.cluster.agent_client import AgentUnavailable
from tests.support.served_agent import served_agent


class Runtime:
    """Answers each request with `answer(method, n)` (raw bytes, or None to close the
    connection without answering); counts connections and requests."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[str] = []
        self.close_after = False  # close each connection once it has answered

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while head := await reader.readuntil(b"\r\n\r\n"):
                method = head.split(b" ", 1)[0].decode()
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests.append(method)
                answer = self.answer(method, len(self.requests))
                if answer is None:
                    break
                writer.write(answer)
                if self.close_after:
                    break
        writer.close()


def ok(body: bytes = b'{"ok":true}') -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


@contextlib.asynccontextmanager
async def runtime(tmp_path: pathlib.Path, answer):
    served = Runtime(answer)
    path = str(tmp_path / "runtime.sock")
    server = await asyncio.start_unix_server(served.serve, path)
    pool = KeptConnections(Endpoint.unix(path), idle=2)
    try:
        yield served, pool
    finally:
        await pool.close()
        server.close()
        await server.wait_closed()


GET = b"GET /containers/json HTTP/1.1\r\nHost: docker\r\n\r\n"
POST = b"POST /containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n"


def test_one_connection_carries_exchange_after_exchange(tmp_path):
    async def main():
        async with runtime(tmp_path, lambda method, n: ok(b"%d" % n)) as (served, pool):
            bodies = [(await pool.exchange("GET", GET, b"", 1 << 20)).body for _ in range(5)]
            assert bodies == [b"1", b"2", b"3", b"4", b"5"]
            assert served.connections == 1
            assert len(pool) == 1 and pool.in_use == 0
    asyncio.run(main())


def test_a_post_the_runtime_may_have_seen_is_not_sent_again(tmp_path):
    # The second request arrives on the kept connection and the runtime closes it
    # without answering: a create may have happened, so it fails instead of repeating.
    async def main():
        answer = lambda method, n: None if n == 2 else ok()  # noqa: E731
        async with runtime(tmp_path, answer) as (served, pool):
            await pool.exchange("POST", POST, b"{}", 1 << 20)
            with pytest.raises(RuntimeGone, match="without answering"):
                await pool.exchange("POST", POST, b"{}", 1 << 20)
            assert served.requests == ["POST", "POST"]
    asyncio.run(main())


def test_a_read_on_a_connection_closed_under_it_goes_again_on_a_new_one(tmp_path):
    async def main():
        answer = lambda method, n: None if n == 2 else ok(b"%d" % n)  # noqa: E731
        async with runtime(tmp_path, answer) as (served, pool):
            await pool.exchange("GET", GET, b"", 1 << 20)
            again = await pool.exchange("GET", GET, b"", 1 << 20)
            assert again.body == b"3"
            assert served.requests == ["GET", "GET", "GET"]
            assert served.connections == 2
    asyncio.run(main())


@pytest.mark.parametrize("answer, body, reused", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
     b"abcde", True),
    (b"HTTP/1.1 204 No Content\r\n\r\n", b"", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi", b"hi", False),
    (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", b"hi", False),
], ids=["chunked", "no body", "connection close", "http/1.0"])
def test_every_framing_is_read_to_its_end(tmp_path, answer, body, reused):
    async def main():
        async with runtime(tmp_path, lambda method, n: answer) as (served, pool):
            first = await pool.exchange("GET", GET, b"", 1 << 20)
            assert first.body == body
            await pool.exchange("GET", GET, b"", 1 << 20)
            assert served.connections == (1 if reused else 2)
    asyncio.run(main())


def test_an_answer_without_length_runs_to_the_end_of_its_connection(tmp_path):
    async def main():
        class Closing(Runtime):
            async def serve(self, reader, writer):
                self.connections += 1
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\n\r\nall ")
                await writer.drain()
                await asyncio.sleep(0.05)  # the body is what comes until the close
                writer.write(b"of it")
                writer.close()

        served = Closing(None)
        path = str(tmp_path / "closing.sock")
        server = await asyncio.start_unix_server(served.serve, path)
        pool = KeptConnections(Endpoint.unix(path), idle=2)
        assert (await pool.exchange("GET", GET, b"", 1000)).body == b"all of it"
        assert len(pool) == 0  # not kept: it ended with the answer
        assert (await pool.exchange("GET", GET, b"", 1000)).body == b"all of it"
        assert served.connections == 2
        await pool.close()
        server.close()
    asyncio.run(main())


def test_an_exchange_broken_off_closes_its_connection(tmp_path):
    async def main():
        async with runtime(tmp_path, lambda method, n: b"HTTP/1.1 200 OK\r\n") as (
                served, pool):  # a head that never ends
            task = asyncio.create_task(pool.exchange("GET", GET, b"", 1000))
            await asyncio.sleep(0.1)
            assert pool.in_use == 1
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert pool.in_use == 0 and len(pool) == 0
    asyncio.run(main())


@pytest.mark.parametrize("answer, words", [
    (b"SPDY/3 200 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\n\r\n", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nshort", "closed the connection"),
], ids=["status line", "header", "length", "chunk size", "cut short"])
def test_an_answer_that_is_not_http_is_said_so(tmp_path, answer, words):
    """A runtime that answers what is not HTTP/1.1 fails the exchange in words (an
    OSError the agent turns into UNAVAILABLE), and the connection is not kept."""
    async def main():
        async with runtime(tmp_path, lambda method, n: answer) as (served, pool):
            served.close_after = True  # an answer cut short ends with the connection
            with pytest.raises(RuntimeGone, match=words):
                await asyncio.wait_for(pool.exchange("GET", GET, b"", 1000), 5)
            assert len(pool) == 0
    asyncio.run(main())


def test_too_large_an_answer_is_refused_and_its_connection_dropped(tmp_path):
    async def main():
        async with runtime(tmp_path, lambda method, n: ok(b"x" * 100)) as (served, pool):
            with pytest.raises(AnswerTooLarge, match="100 bytes"):
                await pool.exchange("GET", GET, b"", 10)
            assert len(pool) == 0
            assert (await pool.exchange("GET", GET, b"", 1000)).body == b"x" * 100
    asyncio.run(main())


def test_exchanges_held_open_do_not_hold_up_the_next(tmp_path):
    # A wait holds its connection until the container exits; more of them than are
    # kept idle must not make a create wait.
    async def main():
        release = asyncio.Event()

        class Slow(Runtime):
            async def serve(self, reader, writer):
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"POST /wait"):
                    await release.wait()
                writer.write(ok())
                await writer.drain()
                writer.close()

        served = Slow(None)
        path = str(tmp_path / "slow.sock")
        server = await asyncio.start_unix_server(served.serve, path)
        pool = KeptConnections(Endpoint.unix(path), idle=2)
        waits = [asyncio.create_task(pool.exchange(
            "POST", b"POST /wait HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"", 1000))
            for _ in range(5)]
        await asyncio.sleep(0.1)
        assert pool.in_use == 5
        answer = await asyncio.wait_for(pool.exchange("GET", GET, b"", 1000), 5)
        assert answer.head.status == 200
        release.set()
        await asyncio.gather(*waits)
        assert len(pool) <= 2  # no more than `idle` kept afterwards
        await pool.close()
        server.close()
    asyncio.run(main())


def test_a_runtime_that_is_gone_is_said_in_words(tmp_path):
    """A DockerCall to an agent whose runtime socket is gone fails UNAVAILABLE with the
    agent's words for why, and the manager's client says the node's runtime does not
    answer (instead of a Python exception's text)."""
    async def main():
        async with served_agent(AgentService) as agent:
            agent.service.calls.connections.endpoint = Endpoint.unix(str(tmp_path / "gone"))
            with pytest.raises(AgentUnavailable) as failed:
                await agent.client.request("GET", "/containers/json", "all=1")
            assert "does not answer: No such file or directory" in str(failed.value)
    asyncio.run(main())
