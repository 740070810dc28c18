"""DockerCalls: the agent's end of many DockerCalls over one stream.

Each tagged call runs in a task of its own, so a slow call (a stop waiting out its
grace period) holds up none of the others, and each answer goes back, with the
caller's tag, as soon as it is ready. A call that fails answers with the gRPC status
DockerCall would have ended with; only the connection failing ends the stream.

A head-first call (a wait) is answered twice: its head as soon as the runtime sends
it, then the whole answer. Such a call may last as long as a container runs, so the
manager can cancel it by its tag when its client goes away.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from flock.common.logs import sane_request_id, set_request_id
from flock.protos import agent_pb2

log = logging.getLogger(__name__)

_END = object()  # queued when the manager has half-closed its side


class CallRefused(Exception):
    """A DockerCall that ends with a gRPC status instead of an answer."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


# Answers one DockerCallRequest, or raises CallRefused. A head-first one is also given
# where its head goes: answer(request, on_head).
Answer = Callable[..., Awaitable[agent_pb2.DockerCallReply]]
# Takes a tagged reply as soon as it is ready (a head-first call's head).
Send = Callable[[agent_pb2.TaggedDockerCallReply], None]
# Answers it at once when that needs no I/O (a hollow node's memory), else None.
AnswerNow = Callable[[agent_pb2.DockerCallRequest], agent_pb2.DockerCallReply | None]


def failed_reply(tag: int, exc: Exception, what: str) -> agent_pb2.TaggedDockerCallReply:
    """The tagged answer of a call that raised: its CallRefused status, or UNKNOWN for
    anything else, which is logged as `what` failing (a bug, not the caller's doing)."""
    if isinstance(exc, CallRefused):
        return agent_pb2.TaggedDockerCallReply(id=tag, code=exc.code.value[0],
                                               details=exc.details)
    log.error("%s failed", what, exc_info=exc)
    return agent_pb2.TaggedDockerCallReply(
        id=tag, code=grpc.StatusCode.UNKNOWN.value[0],
        details=f"Unexpected {type(exc).__name__}: {exc}")


def _failed(tagged: agent_pb2.TaggedDockerCall, exc: Exception
            ) -> agent_pb2.TaggedDockerCallReply:
    request = tagged.call.request
    return failed_reply(tagged.id, exc, f"DockerCall {request.method} {request.path}")


async def answer_one(answer: Answer, tagged: agent_pb2.TaggedDockerCall,
                     send: Send | None = None) -> agent_pb2.TaggedDockerCallReply:
    """The tagged answer; a failure is that call's status, never its stream's (or
    link's, call_link.py). A head-first call's head goes to `send` first."""
    # Logged with the request ID the call carries, as a unary call's metadata would.
    set_request_id(sane_request_id(tagged.call.request.request_id) or "")
    try:
        if tagged.call.head_first and send is not None:
            tag = tagged.id
            reply = await answer(tagged.call, lambda head: send(
                agent_pb2.TaggedDockerCallReply(id=tag, reply=head)))
        else:
            reply = await answer(tagged.call)
    except Exception as exc:  # noqa: BLE001 - one call's failure is not the stream's
        return _failed(tagged, exc)
    return agent_pb2.TaggedDockerCallReply(id=tagged.id, reply=reply)


def answer_at_once(answer_now: AnswerNow, tagged: agent_pb2.TaggedDockerCall
                   ) -> agent_pb2.TaggedDockerCallReply | None:
    """The tagged answer when `answer_now` has it without I/O; else None."""
    set_request_id(sane_request_id(tagged.call.request.request_id) or "")
    try:
        reply = answer_now(tagged.call)
    except Exception as exc:  # noqa: BLE001 - as answer_one
        return _failed(tagged, exc)
    return None if reply is None else agent_pb2.TaggedDockerCallReply(id=tagged.id,
                                                                      reply=reply)


async def serve(requests: AsyncIterator[agent_pb2.TaggedDockerCall], answer: Answer,
                answer_now: AnswerNow | None = None
                ) -> AsyncIterator[agent_pb2.TaggedDockerCallReply]:
    """The answers to `requests` as they complete. When the manager half-closes, the
    calls already taken are still answered; when the stream is cancelled, so are they.
    A call `answer_now` answers goes back without a task of its own (a task per call
    was ~40% of a hollow agent's cost per message, bench/grpc_floor.py)."""
    answers: asyncio.Queue = asyncio.Queue()
    running: dict[int, asyncio.Task] = {}

    def finished(tag: int, task: asyncio.Task) -> None:
        if running.get(tag) is task:
            del running[tag]
        if not task.cancelled():
            answers.put_nowait(task.result())

    async def take() -> None:
        try:
            async for tagged in requests:
                if tagged.cancel:
                    if (task := running.pop(tagged.id, None)) is not None:
                        task.cancel()
                    continue
                if answer_now is not None and (
                        done := answer_at_once(answer_now, tagged)) is not None:
                    answers.put_nowait(done)
                    continue
                task = asyncio.create_task(answer_one(answer, tagged, answers.put_nowait))
                running[tagged.id] = task
                task.add_done_callback(functools.partial(finished, tagged.id))
        finally:
            answers.put_nowait(_END)

    taker = asyncio.create_task(take())
    try:
        while (item := await answers.get()) is not _END:
            yield item
        taker.result()  # a broken request stream ends this one the same way
        while running or not answers.empty():
            item = await answers.get()
            if item is not _END:
                yield item
    finally:
        taker.cancel()
        for task in list(running.values()):
            task.cancel()
