"""Issue 18 follow-ups on the exec runtime, with the real docker CLI: a command that cannot
start (`docker run --rm busybox /nonexistent` hung the CLI), endpoint settings
(`--network-alias` honoured, the rest a 501 instead of a silent ignore), and `docker
push` through the manager to a local Debian docker-registry.

The start failure's texts, codes and wait answers are those of dockerd 20.10 (Debian's
docker.io, with runc) run on this machine: 400 "failed to create shim task: OCI runtime
create failed: runc create failed: unable to start container process: exec:
\\"/nonexistent\\": stat /nonexistent: no such file or directory: unknown", State.ExitCode
127 (126 for "permission denied"), `wait?condition=removed` answering
{"Error": null, "StatusCode": 127} (moby daemon/start.go translateContainerdStartErr;
the CLI's exit codes: docker/cli cli/command/container/run.go runStartContainerErr)."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import platform
import subprocess

import bcrypt
import docker
import pytest

from flock.agent.runtimes.exec import isolation
from flock.busybox import busybox_rootfs_tar
from flock.local_cluster import LocalCluster
from tests.support import oci_images
from tests.support.exec_runtime import raw, running_runtime
from tests.support.registry import start_registry

pytestmark = [pytest.mark.timeout(180),
              pytest.mark.skipif(os.geteuid() != 0 or not isolation.probe(),
                                 reason="container networks need root and namespaces")]
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
NOT_FOUND = ('docker: Error response from daemon: failed to create shim task: OCI runtime create '
             'failed: runc create failed: unable to start container process: exec: '
             '"/nonexistent": stat /nonexistent: no such file or directory: unknown')
NOT_EXECUTABLE = ('docker: Error response from daemon: failed to create shim task: OCI runtime '
                  'create failed: runc create failed: unable to start container process: '
                  'exec: "/etc/passwd": permission denied: unknown')


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    with running_runtime(tmp_path_factory.mktemp("exec-followups")) as runtime:
        runtime.import_busybox()
        yield runtime


def first_error_line(proc: subprocess.CompletedProcess) -> str:
    return proc.stderr.decode().strip().splitlines()[0]


# --- a command that cannot start ----------------------------------------------------------
@pytest.mark.parametrize("network", ["default", "none"])
def test_run_rm_of_a_missing_command_exits_127_and_removes_it(rt, network):
    before = rt.out("ps", "-aq")
    # the CLI waits for wait?condition=removed before it exits: this hung for ever
    proc = rt.docker("run", "--rm", "--network", network, "busybox", "/nonexistent",
                     check=False)
    assert (proc.returncode, first_error_line(proc)) == (127, NOT_FOUND)
    assert "Error waiting for container" not in proc.stderr.decode()  # wait: Error null
    assert rt.out("ps", "-aq") == before


def test_a_command_that_cannot_start_keeps_the_engines_state(rt):
    proc = rt.docker("run", "--name", "noexec", "busybox", "/etc/passwd", check=False)
    assert (proc.returncode, first_error_line(proc)) == (126, NOT_EXECUTABLE)
    state = json.loads(rt.out("inspect", "noexec"))[0]["State"]
    assert (state["Status"], state["ExitCode"], state["FinishedAt"]) == \
        ("created", 126, "0001-01-01T00:00:00Z")
    assert "docker: Error response from daemon: " + state["Error"] == NOT_EXECUTABLE
    status, _, body = raw(rt.socket, "POST", "/containers/noexec/wait")
    assert (status, json.loads(body)) == (200, {"StatusCode": 126,
                                                "Error": {"Message": state["Error"]}})
    rt.docker("rm", "noexec")


# --- endpoint settings ----------------------------------------------------------------------
def test_network_aliases_name_the_container_for_the_others(rt):
    """Through the Docker SDK: the docker CLI itself refuses --network-alias outside a
    user-defined network, the API takes it (the exec bridge resolves names as one)."""
    api = docker.APIClient(base_url=rt.url, version="auto")
    try:
        endpoint = api.create_endpoint_config(aliases=["web", "www.example"])
        made = api.create_container(
            "busybox", ["sleep", "60"], name="aliased",
            networking_config=api.create_networking_config({"bridge": endpoint}))
        api.start(made["Id"])
        inspect = json.loads(rt.out("inspect", "aliased"))[0]
        settings = inspect["NetworkSettings"]["Networks"]["bridge"]
        assert settings["Aliases"] == ["web", "www.example"]
        address = settings["IPAddress"]
        script = "ping -c1 -W2 web >/dev/null && ping -c1 -W2 www.example >/dev/null " \
                 "&& grep -w web /etc/hosts"
        out = rt.out("run", "--rm", "busybox", "sh", "-c", script)
        assert out.split() == [address, "aliased", inspect["Config"]["Hostname"], "web",
                               "www.example"]
    finally:
        rt.docker("rm", "-f", "aliased", check=False)
        api.close()
    # gone with the container
    assert "web" not in rt.out("run", "--rm", "busybox", "cat", "/etc/hosts").split()


@pytest.mark.parametrize(("options", "status", "message"), [
    (["--ip", "10.210.9.9"], 501, "NetworkingConfig.EndpointsConfig.default.IPAMConfig."
                                  "IPv4Address (--ip; addresses come from the node's subnet)"),
    (["--ip6", "fd00::9"], 501, "NetworkingConfig.EndpointsConfig.default.IPAMConfig."
                                "IPv6Address (--ip6; its network is IPv4 only)"),
    (["--link-local-ip", "169.254.1.1"], 501, "EndpointsConfig.default.IPAMConfig."
                                              "LinkLocalIPs"),
    (["--domainname", "example.org"], 501, "Config.Domainname; the UTS namespace gets the "
                                           "hostname only"),
    (["-p", "[::1]:8080:80"], 501, "publishing on the IPv6 address ::1"),
    (["-v", "/tmp:/x:rshared"], 501, "bind propagation rshared: its bind mounts are private"),
    (["--mount", "type=bind,src=/tmp,dst=/x,bind-propagation=rslave"], 501,
     "bind propagation rslave"),
])
def test_endpoint_settings_it_cannot_honour_are_refused(rt, options, status, message):
    before = rt.out("ps", "-aq")
    proc = rt.docker("create", *options, "busybox", "true", check=False)
    assert proc.returncode != 0
    assert message in proc.stderr.decode(), proc.stderr
    assert rt.out("ps", "-aq") == before  # nothing made
    body = _create_body(options)
    if body is not None:  # the same through the API, for the status
        code, _, answer = raw(rt.socket, "POST", "/containers/create",
                              json.dumps(body).encode())
        assert code == status and message in json.loads(answer)["message"]


def _create_body(options: list[str]) -> dict | None:
    """The body the CLI sends for the first three cases (its empty fields included)."""
    ipam = {"--ip": "IPv4Address", "--ip6": "IPv6Address"}.get(options[0])
    if ipam is None:
        return None
    endpoint = {"IPAMConfig": {ipam: options[1]}, "Links": None, "Aliases": None,
                "MacAddress": "", "DriverOpts": None, "NetworkID": "", "EndpointID": "",
                "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": None}
    return {"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "default"},
            "NetworkingConfig": {"EndpointsConfig": {"default": endpoint}}}


def test_more_unsupported_settings_answer_501(rt):
    cases = [
        ({"HostConfig": {"Annotations": {"a": "b"}}}, "HostConfig.Annotations"),
        ({"HostConfig": {"NetworkMode": "host"}, "NetworkingConfig": {"EndpointsConfig": {
            "host": {"Aliases": ["x"]}}}},  # the daemon's words (runconfig/errors.go)
         "network-scoped alias is supported only for containers in user defined networks"),
        ({"NetworkDisabled": True}, "Config.NetworkDisabled; use --network none"),
        ({"NetworkingConfig": {"EndpointsConfig": {"bridge": {}, "other": {}}}},
         "connects a container to one network, its NetworkMode (bridge), not also to other"),
        ({"NetworkingConfig": {"EndpointsConfig": {"default": {"DriverOpts": {"k": "v"}}}}},
         "EndpointsConfig.default.DriverOpts"),
        ({"NetworkingConfig": {"EndpointsConfig": {"default": {"Links": ["a:b"]}}}},
         "EndpointsConfig.default.Links (--link;"),
    ]
    for extra, message in cases:
        body = {"Image": "busybox", "Cmd": ["true"], **extra}
        status, _, answer = raw(rt.socket, "POST", "/containers/create",
                                json.dumps(body).encode())
        wanted = 400 if "user defined" in message else 501
        assert status == wanted and message in json.loads(answer)["message"], (extra, answer)
    # the CLI's default: empty fields ask for nothing
    body = {"Image": "busybox", "Cmd": ["true"], "Domainname": "", "NetworkDisabled": False,
            "HostConfig": {"Annotations": None},
            "NetworkingConfig": {"EndpointsConfig": {"default": {
                "IPAMConfig": {"IPv4Address": "", "IPv6Address": "", "LinkLocalIPs": None},
                "Aliases": [], "Links": None, "MacAddress": "", "DriverOpts": {}}}}}
    status, _, answer = raw(rt.socket, "POST", "/containers/create", json.dumps(body).encode())
    assert status == 201, answer
    rt.docker("rm", json.loads(answer)["Id"])


# --- through the manager --------------------------------------------------------------------
def cluster_docker(cluster: LocalCluster, *args: str, check: bool = True):
    return subprocess.run(["docker", "-H", cluster.url, *args], capture_output=True,
                          timeout=120, check=check)


def test_push_through_the_manager(exec_cluster, registry):
    seed = registry.ref("seed:1")
    oci_images.push_image(registry.address, "seed", "1", [busybox_rootfs_tar()], arch=ARCH,
                          config={"Cmd": ["sh"]})
    cluster_docker(exec_cluster, "pull", "-q", seed)  # on both nodes
    mine = registry.ref("pushed:2")
    cluster_docker(exec_cluster, "tag", seed, mine)
    out = cluster_docker(exec_cluster, "push", mine).stdout.decode()
    assert f"The push refers to repository [{registry.address}/pushed]" in out, out
    assert "2: digest: sha256:" in out, out
    assert registry.tags("pushed") == ["2"]
    cluster_docker(exec_cluster, "rmi", mine, seed)
    assert cluster_docker(exec_cluster, "run", "--rm", "-e", "constraint:node==node-2", mine,
                          "echo", "pushed").stdout.strip() == b"pushed"
    # pulled again by the run (on create's 404), tagged anew, pushed from its first holder
    only = registry.ref("only:3")
    cluster_docker(exec_cluster, "tag", mine, only)
    assert "3: digest: sha256:" in cluster_docker(exec_cluster, "push", only).stdout.decode()
    assert registry.tags("only") == ["3"]
    missing = cluster_docker(exec_cluster, "push", registry.ref("nowhere:1"), check=False)
    assert missing.returncode != 0
    assert "nowhere" in missing.stderr.decode(), missing.stderr
    cluster_docker(exec_cluster, "rmi", mine, only, check=False)


def test_run_rm_of_a_missing_command_through_the_manager(exec_cluster, registry):
    seed = registry.ref("seed:1")
    cluster_docker(exec_cluster, "pull", "-q", seed)
    before = cluster_docker(exec_cluster, "ps", "-aq").stdout
    proc = cluster_docker(exec_cluster, "run", "--rm", seed, "/nonexistent", check=False)
    assert proc.returncode == 127, proc.stderr
    assert "stat /nonexistent: no such file or directory" in proc.stderr.decode()
    assert cluster_docker(exec_cluster, "ps", "-aq").stdout == before


def login_config(folder: pathlib.Path, address: str, user: str, password: str) -> str:
    """A docker CLI config folder holding credentials as `docker login` writes them."""
    folder.mkdir()
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (folder / "config.json").write_text(json.dumps({"auths": {address: {"auth": auth}}}))
    return str(folder)


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory):
    """A registry behind htpasswd (basic auth)."""
    root = tmp_path_factory.mktemp("locked")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode()
    (root / "htpasswd").write_text(f"alice:{hashed}\n")
    made = start_registry(root / "registry", extra_config=(
        f"auth:\n  htpasswd:\n    realm: flock-test\n    path: {root / 'htpasswd'}\n"))
    yield made
    made.stop()


def test_push_with_docker_login_through_the_manager(exec_cluster, registry, locked_registry,
                                                     tmp_path):
    """The CLI's X-Registry-Auth goes through the manager to the node that pushes."""
    seed = registry.ref("seed:1")
    oci_images.push_image(registry.address, "seed", "1", [busybox_rootfs_tar()], arch=ARCH,
                          config={"Cmd": ["sh"]})
    cluster_docker(exec_cluster, "pull", "-q", seed)
    ref = locked_registry.ref("private:5")
    cluster_docker(exec_cluster, "tag", seed, ref)
    bare = cluster_docker(exec_cluster, "push", ref, check=False)
    assert bare.returncode != 0 and b"no basic auth credentials" in bare.stdout + bare.stderr
    # what `docker login` stores (the manager has no POST /auth yet: see the report)
    config = login_config(tmp_path / "wrong", locked_registry.address, "alice", "nope")
    wrong = cluster_docker(exec_cluster, "--config", config, "push", ref, check=False)
    assert wrong.returncode != 0
    # dockerd 20.10's words for the same push (its blob checks are HEADs, without a body)
    assert wrong.stderr.decode().strip() == "unauthorized: authentication required", wrong
    config = login_config(tmp_path / "right", locked_registry.address, "alice", "s3cret")
    out = cluster_docker(exec_cluster, "--config", config, "push", ref).stdout.decode()
    assert "5: digest: sha256:" in out, out
    cluster_docker(exec_cluster, "rmi", ref, seed)
    pulled = cluster_docker(exec_cluster, "--config", config, "pull", ref).stdout.decode()
    assert "Downloaded newer image" in pulled, pulled
    cluster_docker(exec_cluster, "rmi", ref)
