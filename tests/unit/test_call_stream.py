"""CallStream's bookkeeping, with a stand-in for the gRPC stream: answers reach the
caller whose tag they carry in whatever order they come, a call's failure is its own,
and a stream that cannot open fails its calls instead of leaving them waiting."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from flock.manager.cluster.call_stream import CallFailed, CallStream, StreamSlots
from flock.protos import agent_pb2


class ReversedAnswers:
    """Takes `count` calls, then answers them last first; a call whose path is /fail
    is refused with INVALID_ARGUMENT."""

    def __init__(self, requests, count: int) -> None:
        self.requests = requests
        self.count = count
        self.cancelled = False

    def __aiter__(self):
        return self._answers()

    async def _answers(self):
        taken = [await anext(self.requests) for _ in range(self.count)]
        for tagged in reversed(taken):
            if tagged.call.request.path == "/fail":
                yield agent_pb2.TaggedDockerCallReply(
                    id=tagged.id, code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                    details="refused")
                continue
            yield agent_pb2.TaggedDockerCallReply(id=tagged.id, reply=agent_pb2.DockerCallReply(
                body=tagged.call.request.path.encode()))

    def cancel(self) -> None:
        self.cancelled = True


def _request(path: str) -> agent_pb2.DockerCallRequest:
    return agent_pb2.DockerCallRequest(request=agent_pb2.DockerRequest(method="GET", path=path))


def test_answers_reach_their_callers_in_any_order():
    opened: list[ReversedAnswers] = []

    def open_stream(requests):
        opened.append(ReversedAnswers(requests, 4))
        return opened[-1]

    async def main():
        calls = CallStream(open_stream)
        paths = ["/a", "/b", "/fail", "/c"]
        results = await asyncio.gather(*(calls.call(_request(p)) for p in paths),
                                       return_exceptions=True)
        assert [r.body for r in results[:2]] + [results[3].body] == [b"/a", b"/b", b"/c"]
        assert isinstance(results[2], CallFailed)
        assert results[2].code == grpc.StatusCode.INVALID_ARGUMENT
        # the stand-in ends after four answers: the stream is over, and said so
        await asyncio.sleep(0)
        assert opened[0].cancelled and calls._current is None
        await calls.close()

    asyncio.run(main())
    assert len(opened) == 1  # four calls, one stream


def test_a_stream_that_cannot_open_fails_its_calls_and_frees_its_slot():
    slots = StreamSlots(limit=1)

    def open_stream(requests):
        raise RuntimeError("boom")

    async def main():
        calls = CallStream(open_stream, slots)
        assert calls.has_room()
        with pytest.raises(CallFailed, match="boom") as failed:
            await asyncio.wait_for(calls.call(_request("/a")), 5)
        assert failed.value.code == grpc.StatusCode.UNKNOWN
        await asyncio.sleep(0)
        assert slots.open == 0 and calls.has_room()
        await calls.close()

    asyncio.run(main())
