"""What the exec runtime benches share: a started runtime holding busybox with an SDK
client on its socket, and the one measurement they all start from (create + start + wait
of a container), so that their figures are taken the same way."""

from __future__ import annotations

import contextlib
import pathlib
import sys
import time
from collections.abc import Iterator

import docker

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests.support.exec_runtime import RuntimeProcess, running_runtime  # noqa: E402


def create_start_wait(client: docker.DockerClient, **options) -> float:
    """Seconds from `create` to the end of `wait` of `busybox true`; the container and
    its anonymous volumes are removed afterwards, outside the measure."""
    start = time.perf_counter()
    container = client.containers.create("busybox", ["true"], **options)
    container.start()
    container.wait()
    elapsed = time.perf_counter() - start
    container.remove(v=True)
    return elapsed


@contextlib.contextmanager
def busybox_runtime(folder: pathlib.Path
                    ) -> Iterator[tuple[RuntimeProcess, docker.DockerClient]]:
    """A running exec runtime in `folder` with busybox:latest imported, and an SDK client."""
    with running_runtime(folder) as runtime:
        runtime.import_busybox()
        client = docker.DockerClient(base_url=runtime.url, version="1.41", timeout=60)
        try:
            yield runtime, client
        finally:
            client.close()
