"""The exec runtime driven by the real docker CLI and the Docker SDK over its socket."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time

import docker
import pytest

from flock.agent.runtimes.base import Runtime, RuntimeUnavailable
from flock.agent.runtimes.exec import ExecRuntime
from flock.agent.runtimes.exec.isolation import cgroup_dir
from tests.support.exec_runtime import RuntimeProcess, raw, running_runtime

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    with running_runtime(tmp_path_factory.mktemp("exec")) as runtime:
        runtime.import_busybox("busybox:latest", 'CMD ["sh"]', "ENV GREETING=hello")
        yield runtime


def run_d(rt: RuntimeProcess, *args: str) -> str:
    return rt.out("run", "-d", *args)


def test_import_creates_an_image_with_config(rt, client):
    assert "busybox" in rt.out("images", "--format", "{{.Repository}}:{{.Tag}}")
    image = client.images.get("busybox")
    assert image.attrs["Config"]["Cmd"] == ["sh"]
    assert "GREETING=hello" in image.attrs["Config"]["Env"]
    assert image.id.startswith("sha256:") and len(image.id) == 71
    assert (rt.state_dir / "images" / image.id[7:] / "rootfs" / "bin" / "busybox").exists()


def test_container_is_isolated(rt):
    cid = run_d(rt, "busybox", "sh", "-c", "hostname; echo pid=$$; ls /")
    assert rt.out("wait", cid) == "0"
    lines = rt.out("logs", cid).splitlines()
    assert lines[0] == cid[:12]
    assert lines[1] == "pid=1"
    assert set(lines[2:]) == {"bin", "dev", "etc", "proc", "root", "sys", "tmp"}
    rt.docker("rm", cid)


def test_hostname_option_and_env(rt):
    cid = run_d(rt, "--hostname", "box", "-e", "A=1", "busybox", "sh", "-c",
                "hostname; echo $A $GREETING; pwd")
    rt.out("wait", cid)
    assert rt.out("logs", cid).splitlines() == ["box", "1 hello", "/"]
    rt.docker("rm", cid)


def test_writes_stay_in_the_container(rt):
    first = run_d(rt, "busybox", "sh", "-c", "echo x > /tmp/mark; ls /tmp")
    rt.out("wait", first)
    second = run_d(rt, "busybox", "ls", "/tmp")
    rt.out("wait", second)
    assert rt.out("logs", first) == "mark"
    assert rt.out("logs", second) == ""
    rt.docker("rm", first, second)


def test_exit_codes_through_wait(rt, client):
    cid = run_d(rt, "busybox", "sh", "-c", "exit 7")
    assert rt.out("wait", cid) == "7"
    container = client.containers.get(cid)
    assert container.wait() == {"StatusCode": 7, "Error": None}
    assert container.attrs["State"]["Status"] == "exited"
    assert container.attrs["State"]["ExitCode"] == 7
    assert "Exited (7)" in rt.out("ps", "-a", "--filter", f"id={cid}", "--format", "{{.Status}}")
    container.remove()


def test_logs_keep_stdout_and_stderr_apart(rt, client):
    cid = run_d(rt, "busybox", "sh", "-c", "echo out1; echo err1 >&2; echo out2")
    rt.out("wait", cid)
    done = rt.docker("logs", cid)
    assert done.stdout.decode() == "out1\nout2\n"
    assert done.stderr.decode() == "err1\n"
    container = client.containers.get(cid)
    assert container.logs(stdout=False, stderr=True) == b"err1\n"
    assert container.logs(stdout=True, stderr=False, tail=1) == b"out2\n"
    stamped = container.logs(stdout=True, stderr=False, timestamps=True).decode().splitlines()
    assert stamped[0].endswith(" out1") and stamped[0][:4].isdigit()
    container.remove()


def test_follow_ends_when_the_container_exits(rt):
    cid = run_d(rt, "busybox", "sh", "-c", "echo a; sleep 1; echo b")
    started = time.monotonic()
    assert rt.docker("logs", "-f", cid).stdout.decode() == "a\nb\n"
    assert time.monotonic() - started < 10
    rt.docker("rm", cid)


def test_tty_logs_are_raw(rt, client):
    cid = run_d(rt, "-t", "busybox", "sh", "-c", "echo hi; echo there >&2")
    rt.out("wait", cid)
    assert client.containers.get(cid).logs() == b"hi\r\nthere\r\n"
    rt.docker("rm", cid)


def test_memory_limit_goes_to_the_cgroup(rt):
    cid = run_d(rt, "-m", "32m", "busybox", "sleep", "60")
    folder = cgroup_dir("memory", cid)
    assert (folder / "memory.limit_in_bytes").read_text().strip() == str(32 * 1024 * 1024)
    pid = int(rt.out("inspect", "-f", "{{.State.Pid}}", cid))
    assert str(pid) in (folder / "cgroup.procs").read_text().split()
    rt.docker("rm", "-f", cid)
    assert not folder.exists()


def test_stop_start_restart_and_ps(rt, client):
    cid = run_d(rt, "--name", "sleeper", "busybox", "sleep", "60")
    assert rt.out("ps", "--format", "{{.Names}} {{.Status}}").startswith("sleeper Up")
    assert rt.out("stop", "-t", "1", "sleeper") == "sleeper"
    state = client.containers.get(cid).attrs["State"]
    assert (state["Status"], state["ExitCode"], state["Running"]) == ("exited", 137, False)
    assert "sleeper" not in rt.out("ps", "--format", "{{.Names}}")
    assert "Exited (137)" in rt.out("ps", "-a", "-f", "name=sleeper", "--format", "{{.Status}}")
    assert raw(rt.socket, "POST", f"/v1.41/containers/{cid}/stop")[0] == 304
    rt.docker("start", "sleeper")
    assert raw(rt.socket, "POST", f"/v1.41/containers/{cid}/start")[0] == 304
    first_pid = client.containers.get(cid).attrs["State"]["Pid"]
    rt.docker("restart", "-t", "1", "sleeper")
    again = client.containers.get(cid).attrs["State"]
    assert again["Running"] and again["Pid"] != first_pid
    rt.docker("kill", "sleeper")
    assert client.containers.get(cid).attrs["State"]["ExitCode"] == 137
    rt.docker("rm", "sleeper")
    assert rt.docker("inspect", "sleeper", check=False).returncode != 0


def test_sdk_run_list_and_filters(rt, client):
    keep = client.containers.run("busybox", ["sleep", "60"], detach=True, name="listed",
                                 labels={"role": "web"})
    done = client.containers.run("busybox", ["true"], detach=True, labels={"role": "job"})
    done.wait()
    try:
        assert [c.id for c in client.containers.list(filters={"label": "role=web"})] == [keep.id]
        assert [c.id for c in client.containers.list(all=True, filters={"status": "exited",
                                                                         "label": "role"})] \
            == [done.id]
        assert [c.id for c in client.containers.list(all=True,
                                                     filters={"exited": "0",
                                                              "label": "role=job"})] == [done.id]
        ancestors = client.containers.list(all=True, filters={"ancestor": "busybox"})
        assert {keep.id, done.id} <= {c.id for c in ancestors}
        assert [c.name for c in client.containers.list(filters={"name": "^/listed$"})] \
            == ["listed"]
        assert keep.id in [c.id for c in client.containers.list(filters={"id": keep.id[:10]})]
        entry = client.api.containers(filters={"id": keep.id})[0]
        assert entry["Names"] == ["/listed"] and entry["Image"] == "busybox"
        assert entry["Status"].startswith("Up ") and entry["State"] == "running"
        assert entry["Command"] == "sleep 60" and entry["Ports"] == []
        assert len(client.api.containers(all=True, limit=1)) == 1
        assert client.containers.get(keep.id[:8]).name == "listed"
    finally:
        keep.remove(force=True)
        done.remove()


def test_auto_remove_and_restart_policy(rt, client):
    gone = run_d(rt, "--rm", "busybox", "true")
    deadline = time.monotonic() + 10
    while gone[:12] in rt.out("ps", "-aq") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert gone[:12] not in rt.out("ps", "-aq")
    stopped = run_d(rt, "--rm", "busybox", "sleep", "60")
    rt.docker("stop", "-t", "0", stopped)
    deadline = time.monotonic() + 10
    while stopped[:12] in rt.out("ps", "-aq") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stopped[:12] not in rt.out("ps", "-aq")
    flaky = run_d(rt, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 1")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        attrs = client.containers.get(flaky).attrs
        if attrs["RestartCount"] == 2 and not attrs["State"]["Running"]:
            break
        time.sleep(0.2)
    assert attrs["RestartCount"] == 2
    time.sleep(1)
    assert client.containers.get(flaky).attrs["RestartCount"] == 2
    rt.docker("rm", "-f", flaky)


def test_events_in_engine_shape(rt):
    since = f"{time.time() - 0.01:.9f}"
    cid = run_d(rt, "--name", "evented", "busybox", "sleep", "60")
    rt.docker("stop", "-t", "0", cid)
    rt.docker("rename", "evented", "evented2")
    rt.docker("rm", cid)
    rt.docker("tag", "busybox", "busybox:evt")
    rt.docker("rmi", "busybox:evt")
    until = f"{time.time():.9f}"
    out = rt.out("events", "--since", since, "--until", until, "--format", "{{json .}}")
    events = [json.loads(line) for line in out.splitlines()]
    mine = [e["Action"] for e in events if e["Actor"]["ID"] == cid]
    # sleep as PID 1 ignores SIGTERM: after the timeout comes SIGKILL, as with the Engine
    assert mine == ["create", "start", "kill", "kill", "die", "stop", "rename", "destroy"]
    kills = [e["Actor"]["Attributes"]["signal"] for e in events if e["Action"] == "kill"]
    assert kills == ["15", "9"]
    die = next(e for e in events if e["Action"] == "die")
    assert die["Actor"]["Attributes"]["exitCode"] == "137"
    assert die["Actor"]["Attributes"]["name"] == "evented"
    assert die["Type"] == "container" and die["from"] == "busybox" and die["timeNano"] > 0
    image_actions = [e["Action"] for e in events if e["Type"] == "image"]
    assert image_actions == ["tag", "untag"]
    filtered = rt.out("events", "--since", since, "--until", until, "--filter", "event=die",
                      "--format", "{{.Action}}")
    assert filtered.splitlines() == ["die"]


def test_events_stream_is_held_open(rt, client):
    stream = client.events(decode=True, filters={"type": "container", "event": "create"})
    try:
        cid = client.containers.create("busybox", ["true"]).id
        event = next(stream)
        assert (event["Action"], event["id"]) == ("create", cid)
    finally:
        stream.close()
    client.containers.get(cid).remove()


def test_bad_input_answers_like_the_engine(rt):
    sock = rt.socket
    status, headers, body = raw(sock, "POST", "/v1.41/containers/create", b"{not json")
    assert status == 400 and "malformed JSON" in json.loads(body)["message"]
    assert headers["content-type"] == "application/json"
    status, _, body = raw(sock, "POST", "/containers/create",
                          json.dumps({"Image": "nosuch", "Cmd": ["true"]}).encode())
    assert (status, json.loads(body)) == (404, {"message": "No such image: nosuch:latest"})
    cid = run_d(rt, "--name", "taken", "busybox", "sleep", "60")
    status, _, body = raw(sock, "POST", "/containers/create?name=taken",
                          json.dumps({"Image": "busybox", "Cmd": ["true"]}).encode())
    assert status == 409
    assert json.loads(body)["message"] == (
        f'Conflict. The container name "/taken" is already in use by container "{cid}". '
        "You have to remove (or rename) that container to be able to reuse that name.")
    status, _, body = raw(sock, "DELETE", "/containers/taken")
    assert status == 409 and "You cannot remove a running container" in body.decode()
    status, _, body = raw(sock, "POST", "/containers/taken/kill?signal=NOPE")
    assert status == 400 and "Invalid signal" in body.decode()
    rt.docker("rm", "-f", cid)
    status, _, body = raw(sock, "GET", "/v1.41/containers/nope/json")
    assert (status, json.loads(body)) == (404, {"message": "No such container: nope"})
    status, _, body = raw(sock, "POST", "/v1.41/containers/nope/attach?stream=1")
    assert (status, json.loads(body)) == (404, {"message": "No such container: nope"})
    status, _, body = raw(sock, "POST", "/v1.41/containers/nope/commit")
    assert status == 501
    assert json.loads(body)["message"] == ("the exec runtime does not support POST "
                                           "/containers/nope/commit; use the docker runtime "
                                           "for it")
    assert raw(sock, "POST", "/build")[0] == 501
    assert raw(sock, "GET", "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D")[0] \
        == 400
    assert raw(sock, "POST", "/containers/create?name=bad%20name",
               json.dumps({"Image": "busybox"}).encode())[0] == 400
    assert raw(sock, "GET", "/v1.12/version")[0] == 400
    status, _, body = raw(sock, "POST", "/images/create?fromImage=127.0.0.1:1/alpine&tag=3")
    assert status == 500 and "connection refused" in body.decode()  # no registry there
    status, _, body = raw(sock, "POST", "/images/create?fromSrc=-&repo=x&changes=RUN%20ls", b"")
    assert status == 400 and "RUN is not a valid change command" in body.decode()
    status, _, body = raw(sock, "POST", "/images/create?fromSrc=-&repo=x", b"not a tar" * 100)
    assert status == 400 and "tar" in body.decode()
    assert raw(sock, "POST", "/containers/create",
               json.dumps({"Image": "busybox", "HostConfig": {"Memory": 1024}}).encode())[0] \
        == 400


def test_cli_errors_are_readable(rt):
    missing = rt.docker("run", "-d", "nosuch", "true", check=False)
    assert missing.returncode != 0
    # the CLI pulls on create's 404; Docker Hub is out of reach here
    assert b"Unable to find image 'nosuch:latest' locally" in missing.stderr
    assert b"registry-1.docker.io" in missing.stderr and b'{"message"' not in missing.stderr
    assert b"No such object: nope" in rt.docker("inspect", "nope", check=False).stderr
    bad = rt.docker("run", "-d", "--name", "nocmd", "busybox", "nonexistent", check=False)
    assert b'exec: "nonexistent": executable file not found in $PATH' in bad.stderr
    assert rt.out("inspect", "-f", "{{.State.ExitCode}}", "nocmd") == "127"
    rt.docker("rm", "nocmd")


def test_image_tag_and_remove_rules(rt, client):
    rt.docker("tag", "busybox", "mine/box:1")
    assert "mine/box:1" in client.images.get("busybox").tags
    cid = run_d(rt, "mine/box:1", "sleep", "60")
    image_id = client.images.get("busybox").id
    status, _, body = raw(rt.socket, "DELETE", f"/images/{image_id}")
    assert status == 409 and "conflict" in body.decode()
    assert rt.out("rmi", "mine/box:1") == "Untagged: mine/box:1"
    assert client.images.get("busybox").id == image_id
    rt.docker("rm", "-f", cid)
    assert raw(rt.socket, "DELETE", "/images/nothere")[0] == 404


def test_ping_version_info(rt):
    status, headers, body = raw(rt.socket, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["api-version"] == "1.41" and headers["ostype"] == "linux"
    assert headers["docker-experimental"] == "false"
    assert raw(rt.socket, "HEAD", "/_ping")[0] == 200
    version = json.loads(raw(rt.socket, "GET", "/v1.41/version")[2])
    assert version["ApiVersion"] == "1.41" and version["MinAPIVersion"] == "1.24"
    assert version["Version"].startswith("flock-exec/")
    info = json.loads(raw(rt.socket, "GET", "/info")[2])
    assert info["Name"] == "exec-node" and info["Labels"] == ["zone=test"]
    assert info["Driver"] == "exec" and info["NCPU"] >= 1 and info["MemTotal"] > 0
    assert info["Isolation"] == "namespaces+chroot" and info["Warnings"] == []
    assert info["Images"] >= 1
    assert rt.out("info", "--format", "{{.Name}}") == "exec-node"


def test_restart_keeps_containers_and_reports_killed_ones(rt, client):
    engine_id = client.info()["ID"]
    alive = run_d(rt, "--name", "survivor", "busybox", "sleep", "60")
    doomed = run_d(rt, "--name", "doomed", "busybox", "sleep", "60")
    alive_pid = client.containers.get(alive).attrs["State"]["Pid"]
    doomed_state = json.loads((rt.state_dir / "containers" / doomed / "state.json").read_text())
    rt.stop()
    assert os.path.exists(f"/proc/{alive_pid}")
    os.kill(doomed_state["ShimPid"], signal.SIGKILL)
    os.kill(doomed_state["Pid"], signal.SIGKILL)
    rt.start()
    assert client.info()["ID"] == engine_id
    survivor = client.containers.get("survivor").attrs["State"]
    assert survivor["Running"] and survivor["Pid"] == alive_pid
    dead = client.containers.get("doomed").attrs["State"]
    assert (dead["Status"], dead["ExitCode"]) == ("exited", 137)
    assert "shim died" in dead["Error"]
    rt.docker("stop", "-t", "1", "survivor")
    assert rt.out("wait", "survivor") == "137"
    rt.docker("rm", "-f", alive, doomed)


def test_plain_processes_without_isolation(tmp_path):
    runtime = RuntimeProcess(tmp_path, "--no-isolation")
    runtime.start()
    try:
        runtime.import_busybox("busybox")
        cid = run_d(runtime, "busybox", "sh", "-c", "echo $$; hostname")
        assert runtime.out("wait", cid) == "0"
        pid, hostname = runtime.out("logs", cid).splitlines()
        assert pid != "1" and hostname == socket.gethostname()
        info = json.loads(raw(runtime.socket, "GET", "/info")[2])
        assert info["Isolation"] == "none" and "plain processes" in info["Warnings"][0]
        runtime.docker("rm", cid)
    finally:
        runtime.stop()
        runtime.cleanup()


def test_in_process_runtime_start_and_stop(tmp_path):
    runtime = ExecRuntime(tmp_path, node_name="inproc", cpus=3, memory=2 << 30)
    assert isinstance(runtime, Runtime)
    assert runtime.name == "exec" and runtime.isolated is True
    assert runtime.socket_path == str(tmp_path / "docker.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(runtime.socket_path)  # a socket file nobody serves
    stale.close()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(runtime.start(), loop).result(30)
        sdk = docker.DockerClient(base_url=f"unix://{runtime.socket_path}", version="1.41")
        info = sdk.info()
        assert (info["Name"], info["NCPU"], info["MemTotal"]) == ("inproc", 3, 2 << 30)
        sdk.close()
        asyncio.run_coroutine_threadsafe(runtime.stop(), loop).result(30)
        assert not os.path.exists(runtime.socket_path)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_unusable_socket_path_is_reported(tmp_path):
    runtime = ExecRuntime(tmp_path)
    (tmp_path / "docker.sock").mkdir()  # a folder where the socket should go
    (tmp_path / "docker.sock" / "keep").touch()
    with pytest.raises(RuntimeUnavailable, match="cannot serve on"):
        asyncio.run(runtime.start())
