"""deploy/local-cluster as a newcomer runs it: up.sh, the real docker CLI against the
three-host cluster (primary and replica), down.sh; and afterwards nothing of it is left:
no namespaces, veths, bridge, processes or mounts. Plus the errors for bad input and a
half-made cluster that down.sh still removes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.procs import REPO, wait_for

HERE = REPO / "deploy" / "local-cluster"
UP, DOWN = HERE / "up.sh", HERE / "down.sh"
PROGRAMS = ("ip", "dockerd", "containerd", "etcd", "busybox", "docker", "nsenter", "umount")


@pytest.fixture(autouse=True)
def _needs_root_and_programs():
    if os.geteuid() != 0:
        pytest.fail("the local cluster needs root: run the tests as root (scripts/test.sh)")
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/test.sh, which installs them")


def script(path: Path, *args: str, timeout: float = 240,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["/bin/bash", str(path), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def docker(host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    result = subprocess.run(["docker", "-H", host, *args], capture_output=True, text=True,
                            timeout=90, env=env)
    assert not check or result.returncode == 0, result.stderr
    return result


def fresh_name() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


def start_time(pid: int) -> int | None:
    """As down.sh checks it: None when the process is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def netns_list() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


def netns_pids(netns: str) -> set[int]:
    out = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout
    return {int(word) for word in out.split()}


def recorded(state: Path) -> list[dict]:
    return json.loads((state / "state.json").read_text())["procs"]


def assert_nothing_left(name: str, tag: str, state: Path, procs: list[dict]) -> None:
    assert f"{name}-host-" not in netns_list()
    assert f"flc{tag}" not in links()
    running = [p for p in procs if start_time(p["pid"]) == p["start"]]
    assert not running, f"still running after down.sh: {running}"
    with open("/proc/mounts") as fh:
        mounted = [line for line in fh if str(state) in line]
    assert not mounted, mounted
    # etcd and the engines name the state folder on their command line
    left = subprocess.run(["pgrep", "-af", str(state)], capture_output=True, text=True)
    assert not left.stdout, left.stdout


def bridge_tag(output: str) -> str:
    return re.search(r"bridge flc([0-9a-f]{6})-br", output).group(1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_up_serves_docker_through_primary_and_replica_and_down_leaves_nothing(
        tmp_path_factory):
    name, state = fresh_name(), tmp_path_factory.mktemp("lc")
    up = script(UP, "--name", name, "--state-dir", str(state))
    procs: list[dict] = []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        procs = recorded(state)
        for number, step in enumerate(["checking", "network", "etcd", "a dockerd",
                                       "an agent", "managers", "3 healthy", "busybox"], 1):
            assert re.search(rf"^\[{number}/8\] {step}.* ok \(", up.stdout, re.M), up.stdout
        primary = re.search(r"^export DOCKER_HOST=(tcp://\S+)$", up.stdout, re.M).group(1)
        replica = re.search(r"^replica: (tcp://\S+)", up.stdout, re.M).group(1)
        assert sorted(p["role"] for p in procs) == ["agent"] * 3 + ["dockerd"] * 3 + [
            "etcd"] + ["manager"] * 2
        for index in (1, 2, 3):  # each host's engine and agent run in its namespace
            inside = netns_pids(f"{name}-host-{index}")
            assert {p["pid"] for p in procs if p["label"] == f"host-{index}"} <= inside

        info = docker(primary, "info").stdout
        assert re.search(r"^ Nodes: 3$", info, re.M), info
        assert re.search(r"^ Role: primary$", info, re.M), info
        assert info.count("└ Status: Healthy") == 3, info
        assert all(f"host-{i}: 10." in info for i in (1, 2, 3)), info
        replica_info = docker(replica, "info").stdout
        assert re.search(r"^ Role: replica$", replica_info, re.M), replica_info
        assert re.search(rf"^ Primary: {primary.removeprefix('tcp://')}$", replica_info,
                         re.M), replica_info
        assert re.search(r"^ Nodes: 3$", replica_info, re.M), replica_info

        run = docker(primary, "run", "--name", "hello", "busybox", "echo", "hello from flock")
        assert run.stdout.strip() == "hello from flock"
        names = docker(primary, "ps", "-a", "--format", "{{.Names}}").stdout.split()
        node = next(n.split("/")[0] for n in names if n.endswith("/hello"))
        assert node in {"host-1", "host-2", "host-3"}
        engine = f"unix://{state / node / 'docker.sock'}"  # the real engine in that namespace
        assert "hello" in docker(engine, "ps", "-a", "--format", "{{.Names}}").stdout.split()
        # The replica answers reads from its own view, and takes writes for the primary.
        wait_for(lambda: f"{node}/hello" in docker(replica, "ps", "-a", "--format",
                                                   "{{.Names}}").stdout.split(),
                 15, "the replica to list the container")
        docker(replica, "run", "-d", "--name", "sleeper", "busybox", "sleep", "600")
        sleeper_node = next(n.split("/")[0] for n in docker(
            primary, "ps", "--format", "{{.Names}}").stdout.split() if n.endswith("/sleeper"))

        again = script(UP, "--name", name, "--state-dir", str(state))
        assert again.returncode == 1 and "already up" in again.stderr, again.stderr
        assert f"down.sh --name {name} --state-dir {state}" in again.stderr

        # An engine that crashes leaves its container running, under its shim, with
        # its mounts and cgroups: down.sh must still leave nothing behind.
        engine = f"unix://{state / sleeper_node / 'docker.sock'}"
        inspect = docker(engine, "inspect", "-f", "{{.Id}} {{.State.Pid}}", "sleeper")
        sleeper_id, sleeper_pid = inspect.stdout.split()
        sleeper = {"pid": int(sleeper_pid), "start": start_time(int(sleeper_pid))}
        crashed = next(p for p in procs if p["role"] == "dockerd"
                       and p["label"] == sleeper_node)
        os.kill(crashed["pid"], signal.SIGKILL)
    finally:
        down = script(DOWN, "--name", name, "--state-dir", str(state))
    assert down.returncode == 0, down.stdout + down.stderr
    assert "removing containers ... ok" in down.stdout, down.stdout
    assert_nothing_left(name, bridge_tag(up.stdout), state, [*procs, sleeper])
    assert not list(Path("/sys/fs/cgroup").glob(f"*/docker/{sleeper_id}"))
    assert not state.exists()
    twice = script(DOWN, "--name", name, "--state-dir", str(state))
    assert twice.returncode == 0 and "nothing to remove" in twice.stdout, twice.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_tls_cluster_answers_the_docker_cli_with_the_printed_environment(tmp_path_factory):
    name, state = fresh_name(), tmp_path_factory.mktemp("lc")
    up = script(UP, "--name", name, "--state-dir", str(state), "--tls")
    procs: list[dict] = []
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        procs = recorded(state)
        assert re.search(r"^\[3/9\] TLS certificates.* ok \(", up.stdout, re.M), up.stdout
        line = re.search(r"^export (DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=\S+ "
                         r"DOCKER_HOST=tcp://\S+)$", up.stdout, re.M).group(1)
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(pair.split("=", 1) for pair in line.split())
        replica = re.search(r"^replica: (tcp://\S+)", up.stdout, re.M).group(1)

        def tls_docker(*args: str, **extra: str) -> str:
            result = subprocess.run(["docker", *args], capture_output=True, text=True,
                                    timeout=90, env={**env, **extra})
            assert result.returncode == 0, result.stderr
            return result.stdout

        info = tls_docker("info")
        assert re.search(r"^ Role: primary$", info, re.M) and "Nodes: 3" in info, info
        assert "Docker API TLS: verify client certs" in info, info
        replica_info = tls_docker("info", DOCKER_HOST=replica)
        assert re.search(r"^ Role: replica$", replica_info, re.M), replica_info
        tls_docker("run", "-d", "--name", "web", "busybox", "sleep", "600")
        assert "/web" in tls_docker("ps", "--format", "{{.Names}}")
        plain = docker(env["DOCKER_HOST"], "info", check=False)  # no client cert
        assert plain.returncode != 0
    finally:
        down = script(DOWN, "--name", name, "--state-dir", str(state))
    assert down.returncode == 0, down.stdout + down.stderr
    assert_nothing_left(name, bridge_tag(up.stdout), state, procs)
    assert not state.exists()


def test_a_failed_up_removes_what_it_made_and_keeps_the_logs(tmp_path_factory):
    name, state = fresh_name(), tmp_path_factory.mktemp("lc") / "s"
    up = script(UP, "--name", name, "--state-dir", str(state), "--timeout", "0.001")
    assert up.returncode == 1, up.stdout + up.stderr
    assert "timed out" in up.stderr and "FAILED" in up.stdout, up.stdout + up.stderr
    assert "removing what was made" in up.stdout
    assert_nothing_left(name, bridge_tag(up.stdout), state, [])
    assert sorted(p.name for p in state.iterdir()) == ["logs"]
    down = script(DOWN, "--name", name, "--state-dir", str(state))
    assert down.returncode == 0 and not state.exists(), down.stdout + down.stderr


def test_down_removes_a_half_made_cluster(tmp_path_factory):
    """--keep-on-failure leaves the network, etcd (and maybe engines) as they were."""
    name, state = fresh_name(), tmp_path_factory.mktemp("lc") / "s"
    up = script(UP, "--name", name, "--state-dir", str(state), "--timeout", "0.001",
                "--keep-on-failure")
    assert up.returncode == 1 and "--keep-on-failure" in up.stdout, up.stdout + up.stderr
    procs = recorded(state)
    assert procs and all(start_time(p["pid"]) == p["start"] for p in procs), procs
    assert f"{name}-host-1" in netns_list()
    down = script(DOWN, "--name", name, "--state-dir", str(state))
    assert down.returncode == 0, down.stdout + down.stderr
    assert_nothing_left(name, bridge_tag(up.stdout), state, procs)
    assert not state.exists()


@pytest.mark.parametrize("args, message", [
    (["--name", "Bad_Name"], "invalid --name 'Bad_Name'"),
    (["--subnet", "10.1.2"], "invalid --subnet '10.1.2'"),
    (["--subnet", "127.0.0.0/24"], "overlaps"),
    (["--subnet", "10.250.1.0/30"], "too small"),
    (["--etcd-port", "80"], "invalid --etcd-port 80"),
    (["--manager-port", "2380"], "--etcd-port and --manager-port overlap"),
    (["--timeout", "0"], "invalid --timeout 0"),
    (["--state-dir", "/var/tmp/" + "x" * 80], "too long"),
])
def test_bad_options_are_refused_before_anything_is_made(args, message):
    name = fresh_name()
    result = script(UP, "--name", name, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr, result.stderr
    # interfaces are named after six hex digits of the cluster's name (README)
    tag = hashlib.sha1(name.encode()).hexdigest()[:6]
    assert name not in netns_list() and f"flc{tag}" not in links()


def test_missing_programs_name_the_package(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bin")
    for program in PROGRAMS:
        if program != "dockerd":
            (folder / program).symlink_to(shutil.which(program))
    state = tmp_path_factory.mktemp("lc") / "s"
    result = script(UP, "--name", fresh_name(), "--state-dir", str(state),
                    env={**os.environ, "PATH": str(folder)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "missing program(s): dockerd" in result.stderr
    assert "apt-get install docker.io" in result.stderr
    assert not state.exists()


def test_not_root_is_told_to_use_root(tmp_path_factory):
    for path, what in ((UP, "up.sh"), (DOWN, "down.sh")):
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/bash",
             str(path), "--name", "not-root", "--state-dir",
             str(tmp_path_factory.mktemp("lc") / "s")],
            capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "needs root" in result.stderr and f"sudo deploy/local-cluster/{what}" \
            in result.stderr, result.stderr


def test_down_of_a_cluster_that_is_not_there_is_fine(tmp_path_factory):
    state = tmp_path_factory.mktemp("lc") / "none"
    result = script(DOWN, "--name", fresh_name(), "--state-dir", str(state))
    assert result.returncode == 0 and "nothing to remove" in result.stdout, result.stdout


def test_a_state_dir_with_other_files_is_refused_and_never_emptied(tmp_path_factory):
    state = tmp_path_factory.mktemp("lc")
    (state / "mine.txt").write_text("not the cluster's")
    up = script(UP, "--name", fresh_name(), "--state-dir", str(state))
    assert up.returncode == 2 and "holds other files (mine.txt)" in up.stderr, up.stderr
    down = script(DOWN, "--name", fresh_name(), "--state-dir", str(state))
    assert down.returncode == 0, down.stdout + down.stderr
    assert (state / "mine.txt").read_text() == "not the cluster's"
