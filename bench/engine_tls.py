"""What fronting an engine over tcp:// + TLS costs, against its unix socket.

One dockerd listens on both; a cluster of one agent fronts it first through the socket,
then through TCP with --docker-tlsverify. Through the manager, with the Docker SDK:
create+start latency (the DockerCall path: keep-alive aiohttp), `inspect` latency, and
the raw bridge's throughput: a 64 MB archive put and get (`docker cp` in and out) and the
docker CLI's `run -i --rm cat` of 16 MB (hijacked, half-closed; CLI start included).
Needs root (it starts dockerd).

    python bench/engine_tls.py [--runs 20]
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import docker  # noqa: E402

from flock.certs import issue, make_ca, write_identity  # noqa: E402
from flock.common.table import print_table  # noqa: E402
from tests.support.cluster import Cluster  # noqa: E402
from tests.support.engines import start_engine  # noqa: E402

MB = 1 << 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ms(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def tar_of(data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def attached_cat(url: str, data: bytes) -> float:
    """`docker run -i --rm busybox cat` with `data` on stdin: seconds, CLI start included."""
    started = time.perf_counter()
    done = subprocess.run(["docker", "-H", url, "run", "-i", "--rm", "busybox", "cat"],
                          input=data, capture_output=True, timeout=300, check=True)
    assert done.stdout == data
    return time.perf_counter() - started


def measure(url: str, runs: int) -> dict[str, float]:
    client = docker.DockerClient(base_url=url.replace("tcp://", "http://"), version="1.41",
                                 timeout=120)
    api = client.api
    box = api.create_container("busybox", ["sleep", "600"])["Id"]
    api.start(box)
    creates, inspects, made = [], [], []

    def create_start() -> None:
        made.append(api.create_container("busybox", ["true"])["Id"])
        api.start(made[-1])

    for _ in range(runs):
        creates.append(ms(create_start))
        inspects.append(ms(lambda: api.inspect_container(box)))
    for cid in made:
        api.remove_container(cid, force=True)
    blob = tar_of(os.urandom(64 * MB))
    put = ms(lambda: api.put_archive(box, "/tmp", blob)) / 1000
    get = ms(lambda: b"".join(api.get_archive(box, "/tmp/blob")[0])) / 1000
    cat = attached_cat(url, os.urandom(16 * MB))
    api.remove_container(box, force=True)
    return {"create+start ms": statistics.median(creates),
            "inspect ms": statistics.median(inspects),
            "cp in MB/s": 64 / put, "cp out MB/s": 64 / get, "run -i cat MB/s": 16 / cat}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="flock-bench-") as tmp:
        base = pathlib.Path(tmp)
        ca = make_ca("Engine CA")
        server = write_identity(base / "engine", issue(ca, "e", ips=["127.0.0.1"],
                                                       server=True), ca.cert)
        write_identity(base / "client", issue(ca, "client", role="admin"), ca.cert)
        tcp = f"127.0.0.1:{free_port()}"
        engine = start_engine(base / "dockerd", bridge=False,
                              tls=(server.ca, server.cert, server.key), tcp=tcp)
        results = {}
        try:
            engine.import_busybox()
            for label, options in (
                    ("unix socket", {}),
                    ("tcp + TLS", {"docker_host": f"tcp://{tcp}", "docker_tlsverify": True,
                                   "docker_cert_path": str(base / "client")})):
                cluster = Cluster([engine], base / label.replace(" ", ""), ["node-1"],
                                  agent_options=lambda name, o=options: o)
                try:
                    results[label] = measure(cluster.url, args.runs)
                finally:
                    cluster.close()
        finally:
            engine.stop()
    keys = list(results["unix socket"])
    rows = [[key, *(f"{results[label][key]:.1f}" for label in results)] for key in keys]
    print_table(["THROUGH FLOCK", *results], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
