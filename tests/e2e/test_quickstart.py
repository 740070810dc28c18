"""The README's main job, run as a user would: `flock demo` and `flock up`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from flock.local_cluster import free_port
from flock.local_registry import have_registry

pytestmark = pytest.mark.slow


def flock(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flock", *args], capture_output=True,
                          text=True, timeout=240, **kwargs)


def shim_processes(state_dir) -> set[int]:
    """The container supervisors of this cluster only (other runs may have their own)."""
    out = subprocess.run(["pgrep", "-f", f"flock.agent.runtimes.exec.shim {state_dir}"],
                         capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


def test_demo_spreads_containers_and_cleans_up(tmp_path):
    state = tmp_path / "demo"
    result = flock("demo", "--agents", "2", "--runtime", "exec", "--containers", "4",
                   "--state-dir", str(state))
    assert result.returncode == 0, result.stderr + result.stdout
    if have_registry():  # the image comes from a registry the demo starts and stops
        assert "from a local registry on every node" in result.stdout, result.stdout
        assert not subprocess.run(["pgrep", "-f", "flock-demo-registry-"],
                                  capture_output=True).stdout, "the demo's registry is left"
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("hello-")]
    assert len(rows) == 4
    nodes = [row[1] for row in rows]
    assert sorted(nodes) == ["node-1", "node-1", "node-2", "node-2"], result.stdout
    assert all(row[2] == "0" for row in rows)
    assert all(row[3] == "hello" for row in rows), result.stdout  # "hello from <id>"
    assert not shim_processes(state), "container supervisors left behind"
    left = [path.name for path in state.glob("node-*/containers/*")]
    assert not left, f"the demo's containers were not removed: {left}"
    assert not subprocess.run(["pgrep", "-f", str(state)], capture_output=True).stdout, \
        "agents or manager still running after the demo"


def test_up_serves_the_docker_cli_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flock", "up", "--agents", "2", "--runtime", "exec",
         "-H", f"tcp://127.0.0.1:{port}", "--state-dir", str(tmp_path / "up")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not line.startswith("export DOCKER_HOST="):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
        assert line.strip() == f"export DOCKER_HOST=tcp://127.0.0.1:{port}"
        env = dict(os.environ, DOCKER_HOST=f"tcp://127.0.0.1:{port}")
        info = subprocess.run(["docker", "info"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert info.returncode == 0, info.stderr
        assert re.search(r"Nodes: 2", info.stdout), info.stdout
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    stopped = subprocess.run(["pgrep", "-f", str(tmp_path / "up")], capture_output=True)
    assert stopped.stdout == b"", "agents or manager still running after Ctrl-C"
