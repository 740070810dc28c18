"""`flock demo`: the main job end to end on this machine.

Starts a local cluster (embedded runtime by default), puts a busybox image made from the
host's static busybox on every node (pulled through the manager from a local registry it
starts when `docker-registry` is installed, else imported through it: either fans out
to every node), runs a few
containers through the Docker API, shows where each landed and what it printed, then
removes them and stops the cluster.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

from flock.busybox import busybox_rootfs_tar
from flock.common.table import print_table
from flock.docker_compat.stdcopy import demux
from flock.local_cluster import ClusterError, LocalCluster
from flock.local_registry import LocalRegistry, have_registry
from flock.up import add_cluster_flags, cluster_from_args


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "demo", help="start a local cluster, place containers through it, show where they ran",
    )
    add_cluster_flags(parser)
    parser.add_argument("--containers", type=int, default=4,
                        help="containers to run (default 4)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the cluster running afterwards, until Ctrl-C")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cluster = cluster_from_args(args)
    registry: LocalRegistry | None = None
    try:
        cluster.start()
        print(f"cluster up: {cluster.agents} nodes, {cluster.runtime} runtime, "
              f"DOCKER_HOST={cluster.url}", flush=True)
        registry = start_registry() if have_registry() else None
        image = pull_image(cluster, registry) if registry else import_image(cluster)
        rows = run_containers(cluster, args.containers, image)
        print_table(["CONTAINER", "NODE", "EXIT", "OUTPUT"], rows)
        if args.keep:
            print(f"export DOCKER_HOST={cluster.url}   # Ctrl-C stops the cluster", flush=True)
            while True:
                time.sleep(1)
                cluster.check_children()
        for name, *_ in rows:
            cluster.api("DELETE", f"/containers/{name}?force=1")
    except (ClusterError, RuntimeError, urllib.error.URLError) as exc:
        print(f"flock demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
        if registry is not None:
            registry.stop()
            shutil.rmtree(registry.folder, ignore_errors=True)
    return 0


def start_registry() -> LocalRegistry:
    registry = LocalRegistry(pathlib.Path(tempfile.mkdtemp(prefix="flock-demo-registry-")))
    try:
        registry.start()
    except BaseException:
        shutil.rmtree(registry.folder, ignore_errors=True)
        raise
    return registry


def pull_image(cluster: LocalCluster, registry: LocalRegistry) -> str:
    """`docker pull` through the manager, which pulls on every node."""
    ref = registry.push_rootfs("busybox", "latest", busybox_rootfs_tar(), {"Cmd": ["sh"]})
    repo, _, tag = ref.rpartition(":")
    _create_image(cluster, f"fromImage={repo}&tag={tag}", "pull")
    print(f"pulled {ref} from a local registry on every node", flush=True)
    return ref


def import_image(cluster: LocalCluster, ref: str = "busybox:latest") -> str:
    """`docker import` through the manager, which sends the image to every node."""
    repo, _, tag = ref.partition(":")
    _create_image(cluster, f"fromSrc=-&repo={repo}&tag={tag or 'latest'}", "import",
                  busybox_rootfs_tar(), {"Content-Type": "application/x-tar"})
    print(f"imported {ref} on every node", flush=True)
    return ref


def _create_image(cluster: LocalCluster, query: str, what: str, data: bytes = b"",
                  headers: dict[str, str] | None = None) -> None:
    """POST /images/create through the manager. It answers 200 with JSON progress lines
    even when a node fails, so an "error" in any line is what fails the command."""
    request = urllib.request.Request(f"{cluster.http_url}/images/create?{query}", data=data,
                                     method="POST", headers=headers or {})
    with urllib.request.urlopen(request, timeout=120) as answer:
        for line in answer:
            if b'"error"' in line:
                raise ClusterError(f"image {what} failed: {line.decode().strip()}")


def run_containers(cluster: LocalCluster, count: int,
                   image: str = "busybox:latest") -> list[list[str]]:
    """Create, start and wait for `count` containers; one table row each."""
    rows = []
    for index in range(1, count + 1):
        name = f"hello-{index}"
        status, created = cluster.api("POST", f"/containers/create?name={name}", {
            "Image": image,
            "Cmd": ["sh", "-c", "echo hello from $(hostname)"],
        })
        if status != 201:
            raise ClusterError(f"create {name}: {status} {created}")
        cluster.api("POST", f"/containers/{name}/start")
        _, waited = cluster.api("POST", f"/containers/{name}/wait")
        _, info = cluster.api("GET", f"/containers/{name}/json")
        node = (info or {}).get("Node", {}).get("Name", "?")
        output = logs(cluster, name).strip()
        rows.append([name, node, str((waited or {}).get("StatusCode", "?")), output])
    return rows


def logs(cluster: LocalCluster, name: str) -> str:
    """A container's stdout, without the 8-byte stream headers."""
    url = f"{cluster.http_url}/containers/{name}/logs?stdout=1&stderr=1"
    with urllib.request.urlopen(url, timeout=30) as answer:
        raw = answer.read()
    return b"".join(payload for _, payload in demux(raw)).decode(errors="replace")
