"""What the one-port split (manager/api/shared_port.py) costs the Docker API, and what
the byte pipe costs the ClusterService.

A `flock manage` process (no agents: the front is what is measured) is started twice,
once as it is and once with the split taken out (aiohttp's protocol straight under the
connection guard, as before), and asked from here: sequential GET /_ping on one
keep-alive connection, GET /_ping on a new connection each time (the split's decision
per connection), the Docker SDK's containers.list, and, with the split, gRPC ListNodes
through the Docker API's port against the same call on --grpc-addr's own port. Each
figure is the best of --rounds runs; besides the rate, the manager's CPU time per call
(from /proc: what the split costs, even when other work on the machine bends the rates),
and last the split's own cost per read, timed in this process.

    python bench/shared_port.py [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import docker  # noqa: E402
import grpc  # noqa: E402

from flock.common.table import print_table  # noqa: E402
from flock.manager.api.shared_port import SplitConnection  # noqa: E402
from flock.protos import cluster_pb2 as pb  # noqa: E402
from flock.protos import cluster_pb2_grpc  # noqa: E402

# The manager, optionally without the split: the route GuardedRunner gets is the identity.
RUN = """
import sys
import flock.manager.app as app
if sys.argv[1] == "off":
    app.splitter = lambda socket_path: (lambda make_http: make_http)
from flock.cli import main
sys.exit(main(sys.argv[2:]))
"""


SHARED = "gRPC ListNodes, Docker API port"
OWN = "gRPC ListNodes, --grpc-addr port"  # the WITHOUT column of SHARED's row


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_manager(split: bool, folder: pathlib.Path) -> tuple[subprocess.Popen, int, int]:
    port, grpc_port = free_port(), free_port()
    (folder / "agents").write_text("")
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, "on" if split else "off", "--log-level", "warning",
         "manage", "-H", f"tcp://127.0.0.1:{port}", "--grpc-addr", f"127.0.0.1:{grpc_port}",
         f"file://{folder / 'agents'}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1):
                return proc, port, grpc_port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the manager did not start")


def cpu_seconds(pid: int) -> float:
    """The process's user and system time so far."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(pid: int, port: int, grpc_port: int, count: int, split: bool
            ) -> dict[str, tuple[float, float]]:
    """Call -> (calls per second, the manager's CPU microseconds per call)."""

    def rate(calls: int, work: Callable[[], object]) -> tuple[float, float]:
        work()  # warm up
        cpu, start = cpu_seconds(pid), time.perf_counter()
        for _ in range(calls):
            work()
        wall = time.perf_counter() - start
        return calls / wall, 1e6 * (cpu_seconds(pid) - cpu) / calls

    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def ping_kept() -> None:
        keep.request("GET", "/_ping")
        assert keep.getresponse().read() == b"OK"

    def ping_new() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/_ping")
        assert conn.getresponse().read() == b"OK"
        conn.close()

    sdk = docker.DockerClient(base_url=f"tcp://127.0.0.1:{port}", version="1.41")
    out = {"GET /_ping, keep-alive": rate(count, ping_kept),
           "GET /_ping, new connection": rate(count // 2, ping_new),
           "SDK containers.list": rate(count, lambda: sdk.containers.list(all=True))}
    sdk.close()
    keep.close()
    if split:
        for name, address in ((SHARED, f"127.0.0.1:{port}"), (OWN, f"127.0.0.1:{grpc_port}")):
            with grpc.insecure_channel(address) as channel:
                stub = cluster_pb2_grpc.ClusterServiceStub(channel)
                out[name] = rate(count, lambda s=stub: s.ListNodes(
                    pb.ListNodesRequest(), timeout=10))
    return out


def split_cost(reads: int = 1_000_000) -> float:
    """Nanoseconds the split adds to each read of an HTTP connection, in this process:
    what the rates above cannot resolve on a busy machine."""

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            pass

    sink, split = Sink(), SplitConnection(Sink, "")
    split.connection_made(asyncio.Transport())
    head = b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
    split.data_received(head)  # decided: HTTP from now on
    times = []
    for receiver in (sink, split) * 3:
        start = time.perf_counter()
        for _ in range(reads):
            receiver.data_received(head)
        times.append(time.perf_counter() - start)
    return 1e9 * (min(times[1::2]) - min(times[0::2])) / reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[bool, dict[str, tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for split in (False, True) * args.rounds:  # interleaved: the best of each counts
            proc, port, grpc_port = start_manager(split, pathlib.Path(tmp))
            try:
                got = measure(proc.pid, port, grpc_port, args.requests, split)
            finally:
                proc.terminate()
                proc.wait(15)
            best = results.setdefault(split, {})
            for key, (calls, cpu) in got.items():
                old = best.get(key, (0.0, float("inf")))
                best[key] = (max(old[0], calls), min(old[1], cpu))
    rows = []
    for key, (calls, cpu) in results[True].items():
        before = results[True][OWN] if key == SHARED else results[False].get(key)
        rows.append([key, f"{before[0]:,.0f}/s, {before[1]:.0f} us" if before else "-",
                     f"{calls:,.0f}/s, {cpu:.0f} us",
                     f"{100 * (cpu / before[1] - 1):+.1f}%" if before else "-"])
    print(f"{args.requests} keep-alive calls a run, best of {args.rounds} runs, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print_table(["CALL", "WITHOUT SPLIT (rate, CPU/call)", "WITH SPLIT", "CPU CHANGE"], rows)
    print(f"the split's own cost: {split_cost():.0f} ns per read of an HTTP connection")


if __name__ == "__main__":
    main()
