"""What the manager adds to one Docker API request, by kind, against the engine alone.

The same request straight to a real engine's socket and through a local Flock cluster
in front of it (one agent, runtime docker), on kept connections (a raw HTTP/1.1 client:
no SDK or CLI time on either side), in alternating order, `--runs` times each. Prints the
medians and what the manager adds: a ping, `/version` and the list are answered from the
manager's memory; an inspect, a create and a start go through the agent to the engine (two more
process hops). `bench/docker_run_latency.py` measures the whole `docker run`; this says
where in it the milliseconds are. Needs root (it starts its own dockerd).

    python bench/request_overhead.py [--runs 200]
"""

from __future__ import annotations

import argparse
import http.client
import json
import pathlib
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.paired_stats import alternating_pairs  # noqa: E402
from flock.common.table import print_table  # noqa: E402
from flock.local_cluster import LocalCluster  # noqa: E402
from tests.support.engines import start_engine  # noqa: E402

API = "/v1.41"
CREATE_BODY = json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode()


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 on the engine's unix socket, kept open between requests."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.socket_path)


def tcp_connection(url: str) -> http.client.HTTPConnection:
    host, _, port = url.removeprefix("tcp://").rpartition(":")
    conn = http.client.HTTPConnection(host, int(port))
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as the SDK does
    return conn


def fresh(conn: http.client.HTTPConnection) -> http.client.HTTPConnection:
    """A new connection to where `conn` goes."""
    if isinstance(conn, UnixConnection):
        return UnixConnection(conn.socket_path)
    return tcp_connection(f"tcp://{conn.host}:{conn.port}")


def timed(conn: http.client.HTTPConnection, method: str, path: str,
          body: bytes | None = None) -> tuple[float, int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    start = time.perf_counter()
    conn.request(method, API + path, body, headers)
    answer = conn.getresponse()
    data = answer.read()
    return (time.perf_counter() - start) * 1000, answer.status, data


def measure(direct: http.client.HTTPConnection, flock: http.client.HTTPConnection,
            request: Callable[[http.client.HTTPConnection], float], runs: int
            ) -> tuple[float, float]:
    """Median ms of `request` on each side, alternating which goes first, after a few
    pairs that warm both paths."""
    alternating_pairs(lambda: request(direct), lambda: request(flock), 5)
    straight, through = alternating_pairs(lambda: request(direct), lambda: request(flock), runs)
    return statistics.median(straight), statistics.median(through)


def kinds(engine_url: str, remove: Callable[[str], None]
          ) -> dict[str, Callable[[http.client.HTTPConnection], float]]:
    def get(path: str) -> Callable[[http.client.HTTPConnection], float]:
        def run(conn: http.client.HTTPConnection) -> float:
            elapsed, status, _ = timed(conn, "GET", path)
            assert status == 200, (path, status)
            return elapsed
        return run

    def create(conn: http.client.HTTPConnection) -> float:
        elapsed, status, data = timed(conn, "POST", "/containers/create", CREATE_BODY)
        assert status == 201, data
        remove(json.loads(data)["Id"])  # untimed: every create meets the same engine
        return elapsed

    def start(conn: http.client.HTTPConnection) -> float:
        # Created through the same door, untimed, as `docker run` would just have done:
        # the create's read-back then meets the start, as it does in a run.
        _, status, data = timed(conn, "POST", "/containers/create", CREATE_BODY)
        assert status == 201, data
        container_id = json.loads(data)["Id"]
        elapsed, status, data = timed(conn, "POST", f"/containers/{container_id}/start")
        assert status == 204, data
        remove(container_id)
        return elapsed

    def wait_head(conn: http.client.HTTPConnection) -> float:
        # `docker run` asks for the container's exit before it starts it, and sends the
        # start only once the wait's head is in, on a connection of its own.
        _, status, data = timed(conn, "POST", "/containers/create", CREATE_BODY)
        assert status == 201, data
        container_id = json.loads(data)["Id"]
        waiting = fresh(conn)
        start = time.perf_counter()
        waiting.request("POST", f"{API}/containers/{container_id}/wait?condition=next-exit")
        answer = waiting.getresponse()
        elapsed = (time.perf_counter() - start) * 1000
        assert answer.status == 200, answer.status
        waiting.close()
        remove(container_id)
        return elapsed

    return {"ping": get("/_ping"), "version": get("/version"),
            "list (ps -a)": get("/containers/json?all=1"),
            "inspect": get("/containers/bench-target/json"), "create": create,
            "start": start, "wait (head)": wait_head}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="requests per kind and side")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="flock-bench-") as tmp:
        engine = start_engine(pathlib.Path(tmp) / "engine")
        try:
            engine.import_busybox()
            with LocalCluster(agents=1, runtime="docker", docker_host=engine.url) as cluster:
                direct = UnixConnection(engine.url.removeprefix("unix://"))
                cleanup = UnixConnection(engine.url.removeprefix("unix://"))
                flock = tcp_connection(cluster.url)

                def remove(container_id: str) -> None:
                    for _ in range(2):  # dockerd may race a container's own exit (500)
                        _, status, data = timed(cleanup, "DELETE",
                                                f"/containers/{container_id}?force=1")
                        if b"is not running" not in data:
                            break
                        time.sleep(0.05)
                    assert status == 204, (status, data)

                _, status, _ = timed(direct, "POST", "/containers/create?name=bench-target",
                                     json.dumps({"Image": "busybox",
                                                 "Cmd": ["sleep", "3600"]}).encode())
                assert status == 201, status
                for kind, request in kinds(engine.url, remove).items():
                    straight, through = measure(direct, flock, request, args.runs)
                    rows.append([kind, f"{straight:.2f}", f"{through:.2f}",
                                 f"{through - straight:+.2f}"])
                remove("bench-target")
        finally:
            engine.stop()
    print_table(["REQUEST", "ENGINE MEDIAN ms", "THROUGH FLOCK MEDIAN ms", "ADDED ms"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
