"""`flock demo`: the main job end to end on this machine.

Starts a local cluster (embedded runtime by default), imports a busybox image made from
the host's static busybox through the manager (it fans out to every node), runs a few
containers through the Docker API, shows where each landed and what it printed, then
removes them and stops the cluster.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request

from flock.busybox import busybox_rootfs_tar
from flock.common.table import print_table
from flock.local_cluster import ClusterError, LocalCluster
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
    try:
        cluster.start()
        print(f"cluster up: {cluster.agents} nodes, {cluster.runtime} runtime, "
              f"DOCKER_HOST={cluster.url}", flush=True)
        import_image(cluster)
        rows = run_containers(cluster, args.containers)
        print_table(["CONTAINER", "NODE", "EXIT", "OUTPUT"], rows)
        if args.keep:
            print(f"export DOCKER_HOST={cluster.url}   # Ctrl-C stops the cluster", flush=True)
            while True:
                time.sleep(1)
                cluster.check_children()
        for name, *_ in rows:
            cluster.api("DELETE", f"/containers/{name}?force=1")
    except (ClusterError, RuntimeError) as exc:
        print(f"flock demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


def import_image(cluster: LocalCluster, ref: str = "busybox:latest") -> None:
    """`docker import` through the manager, which sends the image to every node."""
    repo, _, tag = ref.partition(":")
    request = urllib.request.Request(
        f"{cluster.http_url}/images/create?fromSrc=-&repo={repo}&tag={tag or 'latest'}",
        data=busybox_rootfs_tar(), method="POST",
        headers={"Content-Type": "application/x-tar"},
    )
    with urllib.request.urlopen(request, timeout=120) as answer:
        for line in answer:
            if b'"error"' in line:
                raise ClusterError(f"image import failed: {line.decode().strip()}")
    print(f"imported {ref} on every node", flush=True)


def run_containers(cluster: LocalCluster, count: int) -> list[list[str]]:
    """Create, start and wait for `count` containers; one table row each."""
    rows = []
    for index in range(1, count + 1):
        name = f"hello-{index}"
        status, created = cluster.api("POST", f"/containers/create?name={name}", {
            "Image": "busybox:latest",
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
    out = bytearray()
    while len(raw) >= 8:
        size = int.from_bytes(raw[4:8], "big")
        out += raw[8:8 + size]
        raw = raw[8 + size:]
    return out.decode(errors="replace")
