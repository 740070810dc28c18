"""What else containers do, through the manager with the real docker CLI: update
(re-checked against the node's capacity), commit, cp both ways, export, diff, port,
restart, stats, top, and `-it` sessions under a pseudo-terminal."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import uuid

import pytest

pytestmark = pytest.mark.docker


def running(cluster, names, prefix: str = "c", *args: str) -> str:
    name = names(prefix)
    cluster.docker("run", "-d", "--name", name, *args, "busybox", "sleep", "300")
    return name


def reserved(cluster, node: str) -> dict[str, str]:
    _, info, _ = cluster.api("GET", "/info")
    pairs = info["SystemStatus"]
    start = next(i for i, pair in enumerate(pairs) if pair[0] == " " + node)
    return dict(pairs[start + 1: start + 10])


def test_update_is_checked_against_the_nodes_capacity(cluster, names):
    name = running(cluster, names, "up", "-m", "64m")
    node = cluster.node_of(name)
    cluster.docker("update", "-m", "128m", "--memory-swap", "256m", "--cpus", "1", name)
    block = reserved(cluster, node)
    assert block["  └ Reserved Memory"].startswith("128 MiB / ")
    assert block["  └ Reserved CPUs"].startswith("1 / ")
    # -c N reserves N CPUs (classic semantics): 512 CPUs fit on no node of this machine.
    proc = cluster.docker("update", "--cpu-shares", "512", name, check=False)
    assert proc.returncode != 0
    assert f"Cannot update container {name}: node {node} has 1 of ".encode() in proc.stderr
    assert b"512 CPUs and 128 MiB for this container would not fit" in proc.stderr
    assert cluster.docker("inspect", "-f", "{{.HostConfig.CpuShares}}", name).stdout == b"0\n"
    assert reserved(cluster, node)["  └ Reserved CPUs"].startswith("1 / ")
    status, body, _ = cluster.api("POST", f"/containers/{name}/update",
                                  json.dumps({"Memory": "lots"}).encode(),
                                  {"Content-Type": "application/json"})
    # Refused at the front in the Engine's words (manager/api/docker/validation.py).
    assert status == 400 and body["message"] == (
        "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64")


def test_commit_makes_an_image_on_that_node_only(cluster, names):
    name = running(cluster, names, "cm")
    node = cluster.node_of(name)
    cluster.docker("exec", name, "sh", "-c", "echo committed > /marker")
    image = f"committed-{uuid.uuid4().hex[:6]}:1"
    cluster.docker("commit", name, image)
    try:
        holders = [cluster.names[i] for i, engine in enumerate(cluster.engines)
                   if engine.docker("image", "inspect", image, check=False).returncode == 0]
        assert holders == [node]
        out = cluster.docker("run", "--rm", image, "cat", "/marker").stdout
        assert out == b"committed\n"  # placed where the image is
    finally:
        cluster.docker("rmi", "-f", image, check=False)
    status, body, _ = cluster.api("POST", "/commit?container=nosuch")
    assert status == 404 and body["message"] == "No such container: nosuch"


def test_cp_both_ways_and_path_traversal_stays_inside(cluster, names, tmp_path):
    name = running(cluster, names, "cp")
    source = tmp_path / "in.txt"
    source.write_text("through the manager\n")
    cluster.docker("cp", str(source), f"{name}:/tmp/in.txt")
    cluster.docker("cp", f"{name}:/tmp/in.txt", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "through the manager\n"
    # ../ in the path resolves inside the container's root, not the host's.
    cluster.docker("cp", f"{name}:/../../../etc/hostname", str(tmp_path / "hostname"))
    assert (tmp_path / "hostname").read_text().strip() == cluster.docker(
        "inspect", "-f", "{{.Config.Hostname}}", name).stdout.decode().strip()
    evil = tmp_path / f"flock-evil-{uuid.uuid4().hex[:6]}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        entry = tarfile.TarInfo("../../../../.." + str(evil))
        entry.size = 5
        tar.addfile(entry, io.BytesIO(b"evil\n"))
    cluster.docker("cp", "-", f"{name}:/tmp", input=buffer.getvalue(), check=False)
    assert not evil.exists()
    status, _, head = cluster.api("HEAD", f"/containers/{name}/archive?path=/tmp/in.txt")
    assert status == 200 and "X-Docker-Container-Path-Stat" in head
    proc = cluster.docker("cp", f"{name}:/nonexistent", str(tmp_path / "x"), check=False)
    assert proc.returncode != 0 and b"Could not find the file /nonexistent" in proc.stderr
    assert cluster.docker("ps", "-q", "-f", f"name={name}").stdout.strip()  # still serving


def test_export_diff_port_restart_top(cluster, names):
    # node-a: node-b runs with --bridge=none, where -p publishes nothing.
    name = running(cluster, names, "misc", "-p", "18765:80", "-e", "constraint:node==node-a")
    cluster.docker("exec", name, "sh", "-c", "echo x > /tmp/new")
    assert "A /tmp/new" in cluster.docker("diff", name).stdout.decode()
    assert "80/tcp -> 0.0.0.0:18765" in cluster.docker("port", name).stdout.decode()
    exported = cluster.docker("export", name).stdout
    with tarfile.open(fileobj=io.BytesIO(exported)) as tar:
        assert "tmp/new" in tar.getnames()
    before = cluster.docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout
    cluster.docker("restart", "-t", "0", name)
    assert cluster.docker("inspect", "-f", "{{.State.StartedAt}}", name).stdout != before
    assert cluster.docker("ps", "-f", f"name={name}", "--format", "{{.Status}}").stdout.startswith(
        b"Up ")
    assert "sleep 300" in cluster.docker("top", name).stdout.decode()


def test_stats_one_shot_and_stream(cluster, names):
    name = running(cluster, names, "st")
    out = cluster.docker("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", name)
    assert out.stdout.decode().split() == [name, "1"]
    status, body, _ = cluster.api("GET", f"/containers/{name}/stats?stream=0")
    assert status == 200 and "memory_stats" in body and "cpu_stats" in body
    proc = subprocess.Popen(["curl", "-sN", f"http://127.0.0.1:{cluster.port}/containers/"
                             f"{name}/stats"], stdout=subprocess.PIPE)
    try:
        samples = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert all(s["id"] == samples[0]["id"] for s in samples)
    finally:
        proc.kill()
        proc.wait(10)
    assert cluster.api("GET", "/_ping")[0] == 200  # a client gone mid-stream is fine


def tty(cluster, command: str) -> subprocess.CompletedProcess:
    """Run a docker command on a pseudo-terminal (script). Its stdin stays open until the
    end: at EOF script would type a NUL into the terminal, which a tty echoes as ^@."""
    proc = subprocess.Popen(["script", "-qec", f"docker -H {cluster.url} {command}",
                             "/dev/null"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        out = proc.stdout.read()
        proc.wait(60)
    finally:
        proc.kill()
        proc.stdin.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, b"")


def test_run_and_exec_it_under_a_pty(cluster, names):
    proc = tty(cluster, "run --rm -it busybox sh -c 'echo hi'")
    assert proc.returncode == 0 and proc.stdout.replace(b"\r", b"").strip() == b"hi"
    name = running(cluster, names, "tty")
    proc = tty(cluster, f"exec -it {name} sh -c 'echo hi; exit 3'")
    assert proc.returncode == 3 and proc.stdout.replace(b"\r", b"").strip() == b"hi"
