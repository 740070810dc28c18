"""What networking costs on the exec runtime (needs root): the median time of `create` +
`start` + `wait` of a container on the host's network, on the bridge, and on the bridge
with a published port (the SDK on the runtime's socket); and the throughput of one TCP
stream through the userspace proxy of a published port against the container's address
directly (a busybox httpd serving a file).

    python bench/exec_network.py [--runs 20] [--megabytes 64]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.exec_timing import busybox_runtime, create_start_wait  # noqa: E402
from tests.conftest import free_port  # noqa: E402


def download(url: str) -> tuple[float, int]:
    for _ in range(100):
        try:
            start = time.perf_counter()
            with urllib.request.urlopen(url, timeout=60) as answer:
                size = len(answer.read())
            return time.perf_counter() - start, size
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers at {url}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--megabytes", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        with busybox_runtime(pathlib.Path(folder)) as (_, client):
            cases = {"host network": {"network_mode": "host"}, "bridge": {},
                     "bridge + -p": {"ports": {"80/tcp": None}}}
            for label, options in cases.items():
                times = [create_start_wait(client, **options) for _ in range(args.runs)]
                median = statistics.median(times) * 1000
                print(f"create+start+wait, {label:13}: median {median:6.1f} ms "
                      f"({args.runs} runs)")
            port = free_port()
            web = client.containers.run(
                "busybox", ["sh", "-c", f"mkdir /www && dd if=/dev/zero of=/www/blob bs=1M "
                                        f"count={args.megabytes} 2>/dev/null && exec busybox "
                                        f"httpd -f -p 80 -h /www"],
                detach=True, ports={"80/tcp": port})
            web.reload()
            address = web.attrs["NetworkSettings"]["IPAddress"]
            for label, url in (("direct to the container", f"http://{address}/blob"),
                               ("through the proxy", f"http://127.0.0.1:{port}/blob")):
                elapsed, size = download(url)
                print(f"one TCP stream, {label:24}: {size / elapsed / 1e6:7.1f} MB/s "
                      f"({size >> 20} MiB in {elapsed:.2f} s)")
            web.remove(force=True)


if __name__ == "__main__":
    main()
