"""deploy/images/build.sh as an operator runs it: both images built into a real engine
(chosen by DOCKER_HOST), then a manager container and an agent container (the engine's
socket mounted) make a cluster whose `docker run` lands on that engine."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from flock.busybox import busybox_rootfs_tar
from flock.common.version import __version__
from tests.support import engines
from tests.support.procs import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "deploy" / "images" / "build.sh"

# The first build on a machine runs debootstrap (minutes); later ones use the cache.
BUILD_TIMEOUT = 1500
pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(BUILD_TIMEOUT + 300)]


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    if not engines.have_dockerd():
        pytest.fail("dockerd is not installed (or not root): run the README's test command")
    started = engines.start_engine(tmp_path_factory.mktemp("images-engine"), bridge=True)
    yield started
    started.stop()
    # Host-network containers leave dockerd's exec-root/netns/default bind mount, which
    # the engine helper's unmount of exec-root itself does not reach.
    for line in Path("/proc/mounts").read_text().splitlines():
        target = line.split()[1]
        if target.startswith(str(started.root) + "/"):
            subprocess.run(["umount", "-l", target], capture_output=True)


@pytest.fixture(scope="module")
def tag(engine) -> str:
    """Both images built into `engine`; the root filesystem comes from the build cache
    after the first run."""
    tag = f"test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    proc = subprocess.Popen([str(BUILD), "--tag", tag], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "DOCKER_HOST": engine.url})
    try:
        out, err = proc.communicate(timeout=BUILD_TIMEOUT)
    finally:
        if proc.poll() is None:  # timed out or interrupted: the script cleans up on TERM
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode == 0, f"build.sh failed:\n{out}\n{err[-4000:]}"
    assert out.split() == [f"flock-manager:{tag}", f"flock-agent:{tag}"]
    print(f"images built in {time.monotonic() - started:.0f}s:\n{err}")
    return tag


def config(engine, ref: str) -> dict:
    out = engine.docker("image", "inspect", ref, "--format", "{{json .Config}}").stdout
    return json.loads(out)


def test_images_run_flock_from_the_venv(engine, tag):
    for program, command, port in (("manager", "manage", "3376"), ("agent", "join", "4000")):
        cfg = config(engine, f"flock-{program}:{tag}")
        assert cfg["Entrypoint"] == ["/opt/flock/venv/bin/flock", command]
        assert cfg["Cmd"] == ["--help"]
        assert f"{port}/tcp" in cfg["ExposedPorts"]
        env = dict(item.split("=", 1) for item in cfg["Env"])
        assert env["PATH"].startswith("/opt/flock/venv/bin:")
        assert env["DOCKER_CERT_PATH"] == "/etc/flock/certs"
        assert cfg["Labels"]["org.opencontainers.image.version"] == __version__
    # The two images share their one layer.
    layers = {engine.docker("image", "inspect", f"flock-{p}:{tag}", "--format",
                            "{{json .RootFS.Layers}}").stdout for p in ("manager", "agent")}
    assert len(layers) == 1
    done = engine.docker("run", "--rm", f"flock-agent:{tag}", check=False)
    assert done.returncode == 0 and b"--advertise" in done.stdout, done.stderr
    done = engine.docker("run", "--rm", "--entrypoint", "flock", f"flock-manager:{tag}",
                         "--version", check=False)
    assert re.fullmatch(rf"flock {re.escape(__version__)} \(git [0-9a-f]{{7,}}\)\n",
                        done.stdout.decode()), done.stdout


def test_manager_and_agent_containers_place_on_the_engine(engine, tag):
    agent_port, manager_port = free_port(), free_port()
    manager_url = f"tcp://127.0.0.1:{manager_port}"
    agent = f"flock-agent-{tag}"
    manager = f"flock-manager-{tag}"
    engine.docker("run", "-d", "--name", agent, "--network", "host",
                  "-v", f"{engine.socket}:/var/run/docker.sock",
                  f"flock-agent:{tag}", "--advertise", f"127.0.0.1:{agent_port}",
                  "--runtime", "docker", "--name", f"node-{tag}")
    engine.docker("run", "-d", "--name", manager, "--network", "host",
                  f"flock-manager:{tag}", "-H", manager_url, f"nodes://127.0.0.1:{agent_port}")

    def through_manager(*args: str, input: bytes | None = None):
        return subprocess.run(["docker", "-H", manager_url, *args], capture_output=True,
                              input=input, timeout=120)

    def node_is_in():
        done = through_manager("info", "--format", "{{json .}}")
        return done.returncode == 0 and f"node-{tag}".encode() in done.stdout

    try:
        wait_for(node_is_in, 120, "the manager container to see the agent container's node",
                 step=0.5)
    except AssertionError:
        for name in (agent, manager):
            logs = engine.docker("logs", name, check=False)
            print(f"--- {name}\n{logs.stdout.decode()}{logs.stderr.decode()}")
        raise
    done = through_manager("import", "-", "busybox:latest", input=busybox_rootfs_tar())
    assert done.returncode == 0, done.stderr
    name = f"hello-{tag}"
    done = through_manager("run", "--name", name, "busybox:latest", "echo", "hello from flock")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello from flock\n"
    # It ran on the engine behind the agent, and the cluster says where.
    on_engine = engine.docker("ps", "-a", "--filter", f"name=^/{name}$", "--format",
                              "{{.Names}} {{.Status}}").stdout.decode().split()
    assert on_engine[:2] == [name, "Exited"], on_engine
    listed = through_manager("ps", "-a", "--format", "{{.Names}}").stdout.decode().split()
    assert f"node-{tag}/{name}" in listed, listed
    through_manager("rm", name)
