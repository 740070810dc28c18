"""agent/read_back.py: what a change's read-back holds when the engine is slow to let
the container be inspected (it holds the container's lock while it cleans up after an
exit). The runtime is an async function answering like the socket would."""

from __future__ import annotations

import asyncio
import json
import time

from flock.agent import read_back
from flock.protos import agent_pb2

FULL_ID = "ab" * 32
ENTRY = {"Id": FULL_ID, "State": "exited", "Status": "Exited (3) Less than a second ago"}


def _answer(status: int, body: object) -> agent_pb2.DockerCallReply:
    return agent_pb2.DockerCallReply(response=agent_pb2.DockerResponse(status=status),
                                     body=json.dumps(body).encode())


def _runtime(inspect_delay: float):
    """A runtime whose list answers at once and whose inspect takes `inspect_delay`."""
    async def call(req: agent_pb2.DockerRequest, body: bytes) -> agent_pb2.DockerCallReply:
        if req.path == "/containers/json":
            return _answer(200, [ENTRY])
        await asyncio.sleep(inspect_delay)
        return _answer(200, {"Id": FULL_ID, "State": {"Status": "exited", "ExitCode": 3}})
    return call


START = agent_pb2.DockerRequest(method="POST", path=f"/containers/{FULL_ID}/start")


def _started() -> agent_pb2.DockerCallReply:
    return agent_pb2.DockerCallReply(response=agent_pb2.DockerResponse(status=204))


def test_an_inspect_held_by_the_engine_is_left_out_and_the_list_entry_answers():
    async def scenario() -> tuple[agent_pb2.DockerCallReply, float]:
        began = time.monotonic()
        reply = _started()
        read = await read_back.read_back(_runtime(5.0), START, reply)
        assert read is not None and read.id == FULL_ID and read.inspect == b""
        return reply, time.monotonic() - began

    reply, took = asyncio.run(scenario())
    assert took < 2.0  # not the 5 s the inspect would have taken
    assert reply.inspect == b"" and json.loads(reply.listing) == [ENTRY]
    assert reply.read_at_ns > 0


def test_a_prompt_inspect_comes_with_the_list_entry():
    reply = _started()
    read = asyncio.run(read_back.read_back(_runtime(0.0), START, reply))
    assert read is not None and read.id == FULL_ID and read.inspect == reply.inspect
    assert json.loads(reply.inspect)["State"]["ExitCode"] == 3
    assert json.loads(reply.listing) == [ENTRY]


def test_a_read_nobody_waits_for_waits_for_the_inspect():
    """The read-back sent later on the event stream (read_back_feed.py) is always full."""
    read = asyncio.run(read_back.read_container(_runtime(0.2), START, FULL_ID))
    assert read is not None and json.loads(read.inspect)["Id"] == FULL_ID


def test_a_container_gone_before_its_read_gives_no_read_back():
    async def call(req: agent_pb2.DockerRequest, body: bytes) -> agent_pb2.DockerCallReply:
        if req.path == "/containers/json":
            return _answer(200, [])
        return _answer(404, {"message": f"No such container: {FULL_ID}"})

    reply = _started()
    assert asyncio.run(read_back.read_back(call, START, reply)) is None
    assert reply.inspect == b"" and reply.listing == b"" and reply.read_at_ns == 0
