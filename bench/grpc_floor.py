"""The floor of a message's CPU cost on gRPC, each side, against asyncio's own (issue 19).

A create+start costs the manager about six messages on the agents' streams (two
DockerCalls requests out and their answers in, two events in), and a profile puts a
third of its CPU in grpc.aio's write and read paths and gRPC's poller thread. This
measures what one message costs each side when nothing else runs: an echo server and a
client in two processes on 127.0.0.1, one message in flight per stream, N streams, each
side's CPU read from /proc/<pid>/task/*/schedstat (nanoseconds, every thread, gRPC's own
included) over the timed window only: the client waits for a go before it and stops
sending at its end, so both sides are idle at the edges. Figures on a shared machine
move by 5-10% between runs; compare cases from the same interleaved run.

Transports (each on the standard asyncio loop and on uvloop, plain and mutual TLS):
  tcp        a length-prefixed echo on asyncio Protocols: the floor of Python's own loop
  grpc       raw-bytes stream, call.read()/write() and context.read()/write(): gRPC's floor
  grpc-iter  the same stream as an async-generator handler answering a request iterator
             fed from a queue, a reader task resolving futures (the project's shape)
  flock      the project's own code: manager.cluster.call_stream.CallStream against
             agent.call_stream.serve, DockerCalls with realistic protos
  unary      raw-bytes unary calls
The gRPC ends carry the project's channel and server options (agent_client.py,
agent/server.py); the option variants add one argument (or environment setting) to both
ends of a `flock` run, `shared-channel` puts its 100 streams on one channel instead of
one each. The loop is chosen as the programs choose it (common/event_loop.py).
A "message" is one each way, so µs/msg is a side's CPU over twice the exchanges.

    PYTHONPATH=. python bench/grpc_floor.py [--seconds 2] [--rounds 3] [--only 'flock*/*/plain/100']
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import fnmatch
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVICE = "flockbench.Echo"
LOOPS = ("asyncio", "uvloop")
HEADERS = ("case", "loop", "tls", "streams", "exch/s", "client µs/msg", "server µs/msg")

# One gRPC argument added to both ends of a `flock` stream run, to see what it changes.
OPTION_VARIANTS: dict[str, tuple[tuple[str, Any], ...]] = {
    "optimization_target=latency": (("grpc.optimization_target", "latency"),),
    "optimization_target=throughput": (("grpc.optimization_target", "throughput"),),
    "write_buffer_size=1MiB": (("grpc.http2.write_buffer_size", 1 << 20),),
    "max_concurrent_streams=100": (("grpc.max_concurrent_streams", 100),),
    "compression=none": (("grpc.default_compression_algorithm", 0),),
    "enable_retries=0": (("grpc.enable_retries", 0),),
    "enable_channelz=0": (("grpc.enable_channelz", 0),),
    "bdp_probe=0": (("grpc.http2.bdp_probe", 0),),
    "minimal_stack=1": (("grpc.minimal_stack", 1),),
}
# The same, for settings gRPC reads from the environment.
ENV_VARIANTS: dict[str, dict[str, str]] = {
    "GRPC_POLL_STRATEGY=poll": {"GRPC_POLL_STRATEGY": "poll"},
}

Once = Callable[[], Awaitable[Any]]  # one exchange: a message out, its answer back


@dataclasses.dataclass(frozen=True)
class Case:
    transport: str  # tcp | grpc | grpc-iter | flock | unary
    streams: int = 1
    loop: str = "asyncio"
    tls: bool = False
    variant: str = ""  # a key of OPTION_VARIANTS or ENV_VARIANTS, or "shared-channel"

    @property
    def options(self) -> list[tuple[str, Any]]:
        return list(OPTION_VARIANTS.get(self.variant, ()))

    @property
    def label(self) -> str:
        return f"{self.transport} {self.variant}".strip()

    @property
    def key(self) -> str:
        """What --only matches, e.g. `flock/asyncio/plain/100`."""
        return f"{self.label}/{self.loop}/{'tls' if self.tls else 'plain'}/{self.streams}"


def default_cases() -> list[Case]:
    cases = []
    for loop in LOOPS:
        for tls in (False, True):
            for streams in (1, 100):
                cases += [Case(t, streams, loop, tls) for t in ("tcp", "grpc", "flock")]
            cases.append(Case("unary", 1, loop, tls))
    cases += [Case("unary", 100), Case("grpc-iter", 1), Case("grpc-iter", 100),
              Case("flock", 100, variant="shared-channel")]
    cases += [Case("flock", 100, variant=name) for name in [*OPTION_VARIANTS, *ENV_VARIANTS]]
    return cases


# --- measuring ------------------------------------------------------------------------

def cpu_ns(pid: int) -> int:
    """CPU time of every live thread of `pid`. schedstat counts nanoseconds where
    /proc/<pid>/stat counts 10 ms ticks, too coarse for runs of a few seconds."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended between the listing and the read
    return total


def make_pki(folder: Path) -> None:
    """An agent's server cert and a manager's client cert, as on the real link."""
    from flock.certs import issue, make_ca, write_identity

    ca = make_ca("grpc_floor CA")
    write_identity(folder / "server", issue(ca, "agent", ips=["127.0.0.1"], server=True),
                   ca.cert)
    write_identity(folder / "client", issue(ca, "manager", role="manager"), ca.cert)


def _identity(pki: str, side: str):
    from flock.certs import TLSFiles, load_identity

    return load_identity(TLSFiles.in_folder(Path(pki) / side))


def _spawn(role: str, case: Case, args: argparse.Namespace, pki: str,
           port: int = 0) -> subprocess.Popen:
    env = {**os.environ, **ENV_VARIANTS.get(case.variant, {}), "FLOCK_EVENT_LOOP": case.loop,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, __file__, "--role", role, "--case", json.dumps(
        dataclasses.asdict(case)), "--pki", pki, "--port", str(port), "--size", str(args.size),
        "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
    return subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=REPO)


def _line(proc: subprocess.Popen, what: str) -> str:
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the {what} exited ({proc.wait()}) before answering")
    return line.strip()


def measure(case: Case, args: argparse.Namespace, pki: str) -> dict:
    """One run: both sides' CPU over the same timed window, while the client sends."""
    server = _spawn("server", case, args, pki)
    client = None
    try:
        port = int(_line(server, "server"))
        client = _spawn("client", case, args, pki, port)
        if _line(client, "client") != "ready":
            raise RuntimeError("the client did not warm up")
        before = cpu_ns(server.pid), cpu_ns(client.pid)
        client.stdin.write("go\n")
        client.stdin.flush()
        result = json.loads(_line(client, "client"))
        after = cpu_ns(server.pid), cpu_ns(client.pid)
        client.stdin.write("exit\n")
        client.stdin.flush()
        client.wait(timeout=10)
    finally:
        for proc in (client, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    messages = 2 * result["exchanges"]
    return {**dataclasses.asdict(case), "label": case.label, "exchanges": result["exchanges"],
            "per_second": result["exchanges"] / result["seconds"],
            "server_us_per_msg": (after[0] - before[0]) / 1e3 / messages,
            "client_us_per_msg": (after[1] - before[1]) / 1e3 / messages}


def summarise(runs: list[dict]) -> dict:
    """The median of each figure over a case's rounds (each round's in `rounds_<figure>`,
    for the spread)."""
    out = dict(runs[0])
    for key in ("per_second", "server_us_per_msg", "client_us_per_msg"):
        out[key] = statistics.median(run[key] for run in runs)
        out[f"rounds_{key}"] = [round(run[key], 1) for run in runs]
    out["rounds"] = len(runs)
    return out


def row(figures: dict) -> list[str]:
    return [figures["label"], figures["loop"], "tls" if figures["tls"] else "-",
            str(figures["streams"]), f"{figures['per_second']:.0f}",
            f"{figures['client_us_per_msg']:.1f}", f"{figures['server_us_per_msg']:.1f}"]


# --- the tcp echo ---------------------------------------------------------------------

class Framed(asyncio.Protocol):
    """Length-prefixed frames (4 bytes, big-endian) on a stream transport."""

    def __init__(self, on_frame: Callable[[Framed, bytes], None]) -> None:
        self._on_frame = on_frame
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.pending: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            end = 4 + int.from_bytes(buffer[:4], "big")
            if len(buffer) < end:
                break
            frame = bytes(buffer[4:end])
            del buffer[:end]
            self._on_frame(self, frame)

    def send(self, frame: bytes) -> None:
        self.transport.write(len(frame).to_bytes(4, "big") + frame)


def _echo(proto: Framed, frame: bytes) -> None:
    proto.send(frame)


def _answered(proto: Framed, frame: bytes) -> None:
    proto.pending.set_result(frame)


async def tcp_server(case: Case, pki: str) -> tuple[int, Any]:
    ssl_ctx = None
    if case.tls:
        from flock.certs import server_ssl_context

        ssl_ctx = server_ssl_context(_identity(pki, "server"), verify=True)
    server = await asyncio.get_running_loop().create_server(
        lambda: Framed(_echo), "127.0.0.1", 0, ssl=ssl_ctx)
    return server.sockets[0].getsockname()[1], server


async def tcp_client(case: Case, port: int, payload: bytes, pki: str) -> list[Once]:
    loop = asyncio.get_running_loop()
    ssl_ctx = None
    if case.tls:
        from flock.certs import client_ssl_context

        ssl_ctx = client_ssl_context(_identity(pki, "client"))
    callers = []
    for _ in range(case.streams):
        _, proto = await loop.create_connection(lambda: Framed(_answered), "127.0.0.1", port,
                                                ssl=ssl_ctx)

        def once(proto: Framed = proto) -> asyncio.Future:
            proto.pending = loop.create_future()
            proto.send(payload)
            return proto.pending
        callers.append(once)
    return callers


# --- gRPC -----------------------------------------------------------------------------

async def _stream_rw(request_iterator, context) -> None:
    import grpc

    while (message := await context.read()) is not grpc.aio.EOF:
        await context.write(message)


async def _stream_generator(request_iterator, context):
    async for message in request_iterator:
        yield message


async def _unary(request: bytes, context) -> bytes:
    return request


def flock_messages(size: int):
    """A create as the manager sends it and an answer with its read-back, padded to
    about `size` bytes each."""
    from flock.protos import agent_pb2

    request = agent_pb2.DockerCallRequest(
        request=agent_pb2.DockerRequest(
            method="POST", path="/containers/create", query="name=web-1", api_version="1.43",
            headers=[agent_pb2.Header(name="Content-Type", value="application/json")],
            request_id="5f0c2b7e9a4d4c1e"),
        body=b'{"Image":"busybox","Cmd":["sleep","600"],"Env":["x=' + b"y" * size + b'"]}',
        read_back=True)
    reply = agent_pb2.DockerCallReply(
        response=agent_pb2.DockerResponse(status=201, headers=[
            agent_pb2.Header(name="Content-Type", value="application/json")]),
        body=b'{"Id":"' + b"c" * 64 + b'","Warnings":[]}', inspect=b"{" + b"i" * size + b"}",
        read_at_ns=time.time_ns())
    return request, reply


async def grpc_server(case: Case, pki: str, size: int) -> tuple[int, Any]:
    import grpc

    from flock.agent import call_stream
    from flock.agent.server import SERVER_OPTIONS
    from flock.protos import agent_pb2_grpc

    server = grpc.aio.server(options=[*SERVER_OPTIONS, *case.options])
    if case.transport == "flock":
        _, reply = flock_messages(size)

        async def answer(call):
            return reply

        class Agent(agent_pb2_grpc.AgentServicer):
            async def DockerCalls(self, request_iterator, context):  # noqa: N802
                async for tagged in call_stream.serve(request_iterator, answer):
                    yield tagged
        agent_pb2_grpc.add_AgentServicer_to_server(Agent(), server)
    else:
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
            "Stream": grpc.stream_stream_rpc_method_handler(_stream_rw),
            "StreamIter": grpc.stream_stream_rpc_method_handler(_stream_generator),
            "Unary": grpc.unary_unary_rpc_method_handler(_unary)}),))
    if case.tls:
        from flock.certs import grpc_server_credentials

        port = server.add_secure_port("127.0.0.1:0",
                                      grpc_server_credentials(_identity(pki, "server")))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return port, server


class QueuedStream:
    """The manager's shape of a stream (call_stream.py) on raw bytes: requests from a
    queue through an async generator, answers read by a task that resolves futures."""

    def __init__(self, open_stream: Callable) -> None:
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.waiting: collections.deque[asyncio.Future] = collections.deque()
        self.call = open_stream(self._drain())
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _drain(self):
        while True:
            yield await self.outbox.get()

    async def _read(self) -> None:
        async for message in self.call:
            self.waiting.popleft().set_result(message)

    def once(self, payload: bytes) -> asyncio.Future:
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append(answer)
        self.outbox.put_nowait(payload)
        return answer


def _channels(case: Case, port: int, pki: str) -> list:
    import grpc

    from flock.manager.cluster.agent_client import CHANNEL_OPTIONS

    options = [*CHANNEL_OPTIONS, *case.options]
    credentials = None
    if case.tls:
        from flock.certs import grpc_channel_credentials

        credentials = grpc_channel_credentials(_identity(pki, "client"))
    count = 1 if case.variant == "shared-channel" else case.streams
    target = f"127.0.0.1:{port}"
    return [grpc.aio.secure_channel(target, credentials, options=options) if credentials
            else grpc.aio.insecure_channel(target, options=options) for _ in range(count)]


def _rw_caller(call, payload: bytes) -> Once:
    async def once() -> bytes:
        await call.write(payload)
        return await call.read()
    return once


async def grpc_client(case: Case, port: int, payload: bytes, pki: str,
                      size: int) -> list[Once]:
    channels = _channels(case, port, pki)
    pick = [channels[i % len(channels)] for i in range(case.streams)]
    if case.transport == "flock":
        from flock.manager.cluster.call_stream import CallStream
        from flock.protos import agent_pb2_grpc

        request, _ = flock_messages(size)
        streams = [CallStream(agent_pb2_grpc.AgentStub(ch).DockerCalls) for ch in pick]
        return [(lambda stream=stream: stream.call(request)) for stream in streams]
    if case.transport == "unary":
        calls = [ch.unary_unary(f"/{SERVICE}/Unary") for ch in pick]
        return [(lambda call=call: call(payload)) for call in calls]
    if case.transport == "grpc-iter":
        streams = [QueuedStream(ch.stream_stream(f"/{SERVICE}/StreamIter")) for ch in pick]
        return [(lambda stream=stream: stream.once(payload)) for stream in streams]
    return [_rw_caller(ch.stream_stream(f"/{SERVICE}/Stream")(), payload) for ch in pick]


# --- the two sides' processes ---------------------------------------------------------

async def _read_stdin_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def run_for(callers: list[Once], seconds: float) -> int:
    """Exchanges done with one in flight per caller until `seconds` have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds

    async def worker(once: Once) -> int:
        done = 0
        while loop.time() < deadline:
            await once()
            done += 1
        return done
    return sum(await asyncio.gather(*(worker(once) for once in callers)))


async def serve_side(case: Case, args: argparse.Namespace) -> None:
    if case.transport == "tcp":
        port, _server = await tcp_server(case, args.pki)
    else:
        port, _server = await grpc_server(case, args.pki, args.size)
    print(port, flush=True)
    await _read_stdin_line()  # never comes: the measuring process kills us


async def client_side(case: Case, args: argparse.Namespace) -> None:
    payload = b"x" * args.size
    if case.transport == "tcp":
        callers = await tcp_client(case, args.port, payload, args.pki)
    else:
        callers = await grpc_client(case, args.port, payload, args.pki, args.size)
    await run_for(callers, args.warmup)
    print("ready", flush=True)
    await _read_stdin_line()
    start = time.perf_counter()
    exchanges = await run_for(callers, args.seconds)
    print(json.dumps({"exchanges": exchanges, "seconds": time.perf_counter() - start}),
          flush=True)
    await _read_stdin_line()
    os._exit(0)  # skip closing a hundred channels: nothing is measured any more


def side(args: argparse.Namespace) -> None:
    from flock.common import event_loop

    case = Case(**json.loads(args.case))
    event_loop.run(serve_side(case, args) if args.role == "server" else client_side(case, args))


# --- the command ----------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timed, per run")
    parser.add_argument("--warmup", type=float, default=0.5, help="untimed, per run")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of every case, interleaved; the table shows medians")
    parser.add_argument("--size", type=int, default=1000, help="payload bytes each way")
    parser.add_argument("--only", action="append", default=[], metavar="GLOB",
                        help="cases whose LABEL/LOOP/TLS/STREAMS matches, e.g. 'flock*/asyncio/"
                             "plain/100' or 'tcp/*' (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per case")
    parser.add_argument("--role", choices=("server", "client"), help=argparse.SUPPRESS)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--pki", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        side(args)
        return
    cases = [case for case in default_cases()
             if not args.only or any(fnmatch.fnmatchcase(case.key, glob) for glob in args.only)]
    if not cases:
        parser.error(f"no case matches {args.only}")
    runs: dict[Case, list[dict]] = {case: [] for case in cases}
    with tempfile.TemporaryDirectory(prefix="grpc_floor.") as pki:
        make_pki(Path(pki))
        for index in range(args.rounds):
            for case in cases if index % 2 == 0 else reversed(cases):
                runs[case].append(measure(case, args, pki))
    results = [summarise(runs[case]) for case in cases]
    if args.json:
        print(json.dumps(results, indent=1))
        return
    from flock.common.table import print_table

    print(f"CPU per message (one each way per exchange), {args.size}-byte payloads, "
          f"{args.seconds:g} s runs, median of {args.rounds} interleaved round(s)")
    print_table(HEADERS, [row(figures) for figures in results])


if __name__ == "__main__":
    main()
