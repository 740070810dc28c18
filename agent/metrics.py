"""The agent's metrics and request IDs, both from one gRPC server interceptor.

Every RPC the agent serves passes through `AgentMetrics.interceptor()`, which
- binds the manager's request ID (gRPC metadata `x-request-id`, common/logs.py) for the
  call, so the agent's log lines for it carry the same `request_id` as the manager's;
- counts the RPC by method and gRPC status and times it;
- for Docker API exchanges (Docker, DockerCall), times the runtime's answer: until the
  response head for the stream, the whole answer for DockerCall;
- counts each call on a DockerCalls stream as the DockerCall it stands for (and the
  stream itself, when it ends, as one DockerCalls); so are the calls on the call link,
  which bypasses gRPC (docker_call, called by agent/call_link.py);
- logs one debug line per RPC (method, status, milliseconds) and one per Docker API
  exchange (method, path, status, milliseconds).
`flock join --metrics-addr HOST:PORT` serves them at http://HOST:PORT/metrics.

Metrics:
- flock_agent_rpcs_total{method,code}: RPCs served, by method and gRPC status;
- flock_agent_rpc_duration_seconds{method}: how long they took (streams: until the end);
- flock_agent_runtime_request_duration_seconds{method}: the runtime's answer time to a
  Docker API request, by HTTP method.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time

import grpc
from aiohttp import web

from flock.common.logs import METADATA_KEY, bind_request_id, sane_request_id, set_request_id
from flock.common.metrics import CONTENT_TYPE, Registry

log = logging.getLogger("flock.agent.requests")


class AgentMetrics:
    """One agent's metrics (an agent process may hold many: the hollow fleet)."""

    def __init__(self) -> None:
        self.registry = registry = Registry()
        self.rpcs = registry.counter("flock_agent_rpcs_total",
                                     "RPCs served, by method and gRPC status code.",
                                     ["method", "code"])
        self.rpc_seconds = registry.histogram("flock_agent_rpc_duration_seconds",
                                              "RPC time by method, seconds (streams: until "
                                              "they end).", ["method"])
        self.runtime_seconds = registry.histogram(
            "flock_agent_runtime_request_duration_seconds",
            "Time the runtime took to answer a Docker API request (the stream: until the "
            "response head), seconds, by HTTP method.", ["method"])

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        return _Interceptor(self)

    def rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpcs.labels(method, code).inc()
        self.rpc_seconds.labels(method).observe(seconds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("rpc %s %s in %.1fms", method, code, seconds * 1000)

    def runtime(self, request, status: int, seconds: float) -> None:
        """`request` is the DockerRequest the runtime answered with `status`."""
        self.runtime_seconds.labels(request.method.upper() or "?").observe(seconds)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("runtime %s %s -> %d in %.1fms", request.method.upper(), request.path,
                      status, seconds * 1000)

    def docker_call(self, request, answer, seconds: float) -> None:
        """A call on a DockerCalls stream or the call link (agent/call_link.py), counted
        as the DockerCall it stands for: `request` the DockerRequest, `answer` its
        TaggedDockerCallReply."""
        # The debug lines carry the call's request ID, as a unary call's would.
        with (bind_request_id(sane_request_id(request.request_id) or "")
              if log.isEnabledFor(logging.DEBUG) else contextlib.nullcontext()):
            if answer.code:
                code = status_name(answer.code)
            else:
                code = "OK"
                self.runtime(request, answer.reply.response.status, seconds)
            self.rpc("DockerCall", code, seconds)

    def render(self) -> str:
        return self.registry.render()


def _code_name(context) -> str:
    """The status the call ended with, as a name (OK when none was set)."""
    code = context.code()
    if code is None:
        return "OK"
    if isinstance(code, grpc.StatusCode):
        return code.name
    return status_name(code)


def status_name(code: int) -> str:
    """A gRPC status number as its name (the number itself when it is none)."""
    return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))


def _failure(exc: BaseException, context) -> str:
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return "CANCELLED"  # the caller went away (or the stream was closed on it)
    if isinstance(exc, grpc.aio.AbortError):
        return _code_name(context)
    return "UNKNOWN"


class _Interceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: AgentMetrics) -> None:
        self.metrics = metrics

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method.rpartition("/")[2]
        metadata = dict(handler_call_details.invocation_metadata or ())
        request_id = sane_request_id(metadata.get(METADATA_KEY)) or ""
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behaviour = getattr(handler, kind)
            if behaviour is None:
                continue
            if kind.endswith("_unary"):
                wrapped = self._unary(behaviour, method, request_id)
            elif inspect.isasyncgenfunction(behaviour):
                wrapped = self._stream(behaviour, method, request_id, kind == "stream_stream")
            else:
                return handler  # a servicer that writes through the context: left alone
            return handler._replace(**{kind: wrapped})
        return handler

    def _unary(self, behaviour, method: str, request_id: str):
        metrics = self.metrics

        async def unary(request, context):
            set_request_id(request_id)
            start, code = time.perf_counter(), "OK"
            try:
                reply = await behaviour(request, context)
                code = _code_name(context)
                if method == "DockerCall" and reply is not None:
                    metrics.runtime(request.request, reply.response.status,
                                    time.perf_counter() - start)
                return reply
            except BaseException as exc:
                code = _failure(exc, context)
                raise
            finally:
                metrics.rpc(method, code, time.perf_counter() - start)
        return unary

    def _stream(self, behaviour, method: str, request_id: str, streamed_requests: bool):
        metrics = self.metrics

        async def stream(request, context):
            set_request_id(request_id)
            start, code = time.perf_counter(), "OK"
            frames = _Frames(request) if streamed_requests and method == "Docker" else None
            tagged = _Tagged(request) if method == "DockerCalls" else None
            try:
                async for item in behaviour(frames or tagged or request, context):
                    if frames is not None and frames.head_pending(item):
                        metrics.runtime(frames.request, item.response.status,
                                        time.perf_counter() - frames.since)
                    elif tagged is not None:
                        tagged.answered(item, metrics)
                    yield item
                code = _code_name(context)
            except BaseException as exc:
                code = _failure(exc, context)
                raise
            finally:
                metrics.rpc(method, code, time.perf_counter() - start)
        return stream


class _Tagged:
    """The manager's tagged DockerCalls, passed through: each is counted as the
    DockerCall it stands for when its answer goes back."""

    def __init__(self, calls) -> None:
        self._it = calls.__aiter__()
        self._taken: dict[int, tuple[object, float]] = {}

    def __aiter__(self):
        return self

    async def __anext__(self):
        tagged = await anext(self._it)
        if tagged.cancel:  # the call it names is over: never answered
            self._taken.pop(tagged.id, None)
        else:
            self._taken[tagged.id] = (tagged.call.request, time.perf_counter())
        return tagged

    def answered(self, answer, metrics: AgentMetrics) -> None:
        if answer.reply.head_only:  # a head-first call's head: counted at its end
            return
        request, since = self._taken.pop(answer.id, (None, 0.0))
        if request is not None:
            metrics.docker_call(request, answer, time.perf_counter() - since)


class _Frames:
    """The manager's DockerFrames, passed through; notes the request and when it came."""

    def __init__(self, frames) -> None:
        self._it = frames.__aiter__()
        self.request = None
        self.since = 0.0
        self._answered = False

    def __aiter__(self):
        return self

    async def __anext__(self):
        frame = await anext(self._it)
        if self.request is None and frame.WhichOneof("kind") == "request":
            self.request, self.since = frame.request, time.perf_counter()
        return frame

    def head_pending(self, frame) -> bool:
        """Whether `frame` is the response head not yet seen."""
        if self._answered or self.request is None or frame.WhichOneof("kind") != "response":
            return False
        self._answered = True
        return True


async def serve_metrics(metrics: AgentMetrics, addr: str) -> tuple[web.AppRunner, int]:
    """`GET /metrics` on `addr` (HOST:PORT); (runner to clean up, bound port). OSError
    when the address cannot be bound."""
    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode(),
                            headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, _, port = addr.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]"), int(port), reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0][1] if runner.addresses else int(port)
    return runner, bound
