"""Debian's docker-compose 1.29 against the manager: a scaled service spreads over the
nodes (its project network exists on every node), a linked app stays on one node."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter

import pytest

from tests.support.cluster import wait_for

pytestmark = pytest.mark.docker

BIRD = """\
version: "2"
services:
  bird:
    image: busybox
    command: sleep 600
    restart: always
"""

APP = """\
version: "2"
services:
  db:
    image: busybox
    command: sh -c "echo dbdata > /data/f; while true; do echo pong | nc -l -p 7000; done"
    volumes:
      - data:/data
  web:
    image: busybox
    command: sleep 600
    links:
      - db
    volumes_from:
      - db
  cache:
    image: busybox
    command: sleep 600
    links:
      - db
volumes:
  data: {}
"""


@pytest.fixture(scope="module")
def cluster(cluster):
    """The shared one (tests/integration/conftest.py: node-a and node-b), for compose."""
    if shutil.which("docker-compose") is None:
        pytest.fail("docker-compose is not installed: run scripts/test.sh")
    return cluster


@pytest.fixture
def compose(cluster, tmp_path):
    """Run docker-compose for a project file; the project is taken down afterwards."""
    projects: list[tuple[str, str]] = []
    before = cluster.container_ids()

    def run(text: str, project: str, *args: str, check: bool = True):
        path = tmp_path / f"{project}.yml"
        path.write_text(text)
        if (str(path), project) not in projects:
            projects.append((str(path), project))
        proc = subprocess.run(["docker-compose", "-f", str(path), "-p", project, *args],
                              capture_output=True, timeout=120, cwd=tmp_path,
                              env={**os.environ, "DOCKER_HOST": cluster.url})
        if check and proc.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)}: {proc.stderr.decode()}")
        return proc

    yield run
    for path, project in projects:
        subprocess.run(["docker-compose", "-f", path, "-p", project, "down", "-v", "-t", "0"],
                       capture_output=True, timeout=120,
                       env={**os.environ, "DOCKER_HOST": cluster.url})
    cluster.remove_new_containers(before)


def nodes_of(cluster, prefix: str) -> Counter:
    names = cluster.docker("ps", "-a", "-f", f"name={prefix}", "--format", "{{.Names}}")
    return Counter(n.split("/")[0] for n in names.stdout.decode().split())


def test_scale_spreads_ten_birds_evenly(cluster, compose):
    compose(BIRD, "flock", "up", "-d")
    assert sum(nodes_of(cluster, "flock_bird_").values()) == 1
    networks = cluster.docker("network", "ls", "--format", "{{.Name}}").stdout.decode().split()
    assert {"node-a/flock_default", "node-b/flock_default"} <= set(networks)
    compose(BIRD, "flock", "scale", "bird=10")
    assert nodes_of(cluster, "flock_bird_") == {"node-a": 5, "node-b": 5}
    ps = compose(BIRD, "flock", "ps").stdout.decode()
    assert ps.count(" Up ") == 10 and "flock_bird_10" in ps
    compose(BIRD, "flock", "kill")
    states = cluster.docker("ps", "-a", "-f", "name=flock_bird_", "--format", "{{.State}}")
    assert set(states.stdout.decode().split()) == {"exited"}
    compose(BIRD, "flock", "rm", "-vf")
    assert sum(nodes_of(cluster, "flock_bird_").values()) == 0


def test_linked_app_with_volumes_lands_on_one_node_and_answers(cluster, compose):
    compose(APP, "app", "up", "-d")
    placed = nodes_of(cluster, "app_")
    assert sum(placed.values()) == 3 and len(placed) == 1
    assert cluster.docker("exec", "app_web_1", "cat", "/data/f").stdout == b"dbdata\n"
    for client in ("app_web_1", "app_cache_1"):
        wait_for(lambda c=client: cluster.docker(
            "exec", c, "sh", "-c", "echo ping | nc -w 5 db 7000", check=False).stdout
            == b"pong\n", what=f"db answering {client}")
    compose(APP, "app", "down", "-v")
    volumes = cluster.docker("volume", "ls", "-q").stdout.decode().split()
    assert not any(v.endswith("/app_data") for v in volumes)


WEB = """\
version: "2"
services:
  web:
    image: busybox
    command: sleep 600
"""


def test_project_network_on_every_node_is_reused_and_removed_whole(cluster, compose):
    """The project network is made without a node, so on every node (not on one node as
    classic's CreateNetwork in cluster/swarm/cluster.go would put a bridge network; see
    docs/swarm-compat.md): replicas spread, a second `up` finds the network by its name
    (Compose inspects it) and keeps it, `down` removes every node's copy."""
    compose(WEB, "nets", "up", "-d", "--scale", "web=2")
    assert nodes_of(cluster, "nets_web_") == {"node-a": 1, "node-b": 1}

    def copies() -> list[str]:
        return cluster.docker("network", "ls", "--filter", "name=nets_default", "--format",
                              "{{.Name}} {{.ID}}").stdout.decode().splitlines()

    made = copies()
    assert sorted(line.split()[0] for line in made) == ["node-a/nets_default",
                                                         "node-b/nets_default"]
    compose(WEB, "nets", "up", "-d", "--scale", "web=2")
    assert copies() == made
    on_b = cluster.docker("network", "ls", "--filter", "node=node-b", "--filter",
                          "name=nets_default", "--format", "{{.Name}}").stdout.decode().split()
    assert on_b == ["node-b/nets_default"]
    compose(WEB, "nets", "down", "-t", "0")
    assert copies() == []
    for engine in cluster.engines:
        assert engine.docker("network", "inspect", "nets_default", check=False).returncode != 0


PINNED = """\
version: "2.1"
services:
  db:
    image: busybox
    command: sh -c "while true; do echo pong | nc -l -p 7000; done"
  web:
    image: busybox
    command: sleep 600
networks:
  default:
    labels:
      com.docker.swarm.constraints: '["node==node-b"]'
"""


def test_project_network_pinned_by_label_keeps_services_on_one_node(cluster, compose):
    """Classic's one-node network on request: a constraints label on the project network
    puts it on one node, every service follows it there and reaches the others by
    service name (DNS on a local network works within one node only)."""
    compose(PINNED, "pinned", "up", "-d")
    assert nodes_of(cluster, "pinned_") == {"node-b": 2}
    listed = cluster.docker("network", "ls", "--filter", "name=pinned_default", "--format",
                            "{{.Name}}").stdout.decode().split()
    assert listed == ["node-b/pinned_default"]
    wait_for(lambda: cluster.docker("exec", "pinned_web_1", "sh", "-c",
                                    "echo ping | nc -w 5 db 7000", check=False).stdout
             == b"pong\n", what="db answering web by its service name")
    compose(PINNED, "pinned", "down", "-t", "0")
    assert cluster.docker("network", "ls", "-q", "--filter", "name=pinned_default"
                          ).stdout.decode().split() == []
