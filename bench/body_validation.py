"""What checking request bodies at the front costs (manager/api/docker/validation.py):
per body, the parse with the depth scan and the check against the Engine's shapes,
next to a plain json.loads; and how fast a hostile body is refused. Pure CPU, no
engine needed.

    python bench/body_validation.py [--rounds 2000]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from flock.manager.api.docker import json_body, validation  # noqa: E402
from flock.manager.api.docker.errors import DockerError  # noqa: E402

CREATE = "/containers/create"


def cli_create_body() -> bytes:
    """A `docker run` body with the usual flags, as the CLI sends it (about 2 KB)."""
    host = {key: None for key in ("Binds", "Links", "VolumesFrom", "CapAdd", "CapDrop",
                                  "ExtraHosts", "GroupAdd", "SecurityOpt", "Ulimits")}
    host.update({"Memory": 268435456, "NanoCpus": 1500000000, "NetworkMode": "default",
                 "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                 "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                 "LogConfig": {"Type": "", "Config": {}}, "Dns": [], "MemorySwappiness": -1,
                 "Mounts": [{"Type": "tmpfs", "Target": "/t"}], "ConsoleSize": [0, 0]})
    body = {"Hostname": "", "Image": "busybox", "Cmd": ["sleep", "60"], "Env": ["A=1"] * 8,
            "Labels": {f"l{i}": "v" for i in range(8)}, "ExposedPorts": {"80/tcp": {}},
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10 ** 9}, "HostConfig": host,
            "NetworkingConfig": {"EndpointsConfig": {"n": {"Aliases": ["a"]}}}}
    return json.dumps(body).encode()


def per_call(action, rounds: int) -> float:
    """Microseconds per call, the best of three runs."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            action()
        best = min(best, (time.perf_counter() - started) / rounds)
    return best * 1e6


def refused(raw: bytes) -> None:
    try:
        validation.check_body("POST", CREATE, raw)
    except DockerError:
        return
    raise AssertionError("not refused")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = parser.parse_args().rounds
    body = cli_create_body()
    big = json.dumps({"Image": "busybox", "Env": [f"K{i}=" + "v" * 90 for i in range(10_000)]}
                     ).encode()
    deep = b'{"Image":"busybox","Labels":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    rows = [
        (f"json.loads, CLI create body ({len(body)} B)", per_call(lambda: json.loads(body),
                                                                   rounds)),
        ("json_body.loads (depth scan, Go numbers)", per_call(lambda: json_body.loads(body),
                                                              rounds)),
        ("check_body: parse + shapes", per_call(
            lambda: validation.check_body("POST", CREATE, body), rounds)),
        (f"check_body, 10,000 Env entries ({len(big) >> 10} KiB)", per_call(
            lambda: validation.check_body("POST", CREATE, big), max(rounds // 100, 5))),
        (f"refusal of JSON 100,000 deep ({len(deep) >> 10} KiB)", per_call(
            lambda: refused(deep), max(rounds // 100, 5))),
        ("refusal of Memory 1e400", per_call(
            lambda: refused(b'{"HostConfig":{"Memory":1e400}}'), rounds)),
    ]
    for label, micros in rows:
        print(f"{label:<52} {micros:10.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
