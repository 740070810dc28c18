"""Registry pulls and pushes on the exec runtime, against Debian's docker-registry
holding images pushed by a real dockerd (Docker v2 schema 2, layers with whiteouts)
and OCI images and indexes written with the registry's API; driven by the real docker
CLI. Messages are compared with dockerd's own (distribution/pull_v2.go,
distribution/errors.go in moby/moby)."""

from __future__ import annotations

import base64
import json
import os
import platform
import subprocess
import time

import bcrypt
import pytest

from flock.busybox import busybox_rootfs_tar
from tests.support import oci_images
from tests.support.cutting_proxy import CuttingProxy
from tests.support.exec_runtime import RuntimeProcess, raw, running_runtime
from tests.support.registry import start_registry
from tests.support.token_server import SERVICE, TokenServer

pytestmark = pytest.mark.timeout(180)
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
OTHER_ARCH = "arm64" if ARCH != "arm64" else "amd64"

DOCKERFILE = """\
FROM busybox:latest
RUN mkdir /data /opq && echo one > /data/a && echo gone > /data/b && echo x > /opq/old
RUN rm /data/b && rm -rf /opq && mkdir /opq && echo new > /opq/new
ENV GREETING=hi
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=5s CMD true
CMD ["cat", "/data/a"]
"""


@pytest.fixture(scope="module")
def layered(engine, registry, tmp_path_factory):
    """REG/layered:1, built and pushed by a real dockerd: three layers, the last one
    deleting a file (.wh.b) and replacing a folder (.wh..wh..opq)."""
    context = tmp_path_factory.mktemp("context")
    (context / "Dockerfile").write_text(DOCKERFILE)
    ref = registry.ref("layered:1")
    engine.docker("build", "-t", ref, str(context))
    engine.docker("push", ref)
    engine.docker("rmi", ref)
    return ref


@pytest.fixture
def rt(tmp_path):
    with running_runtime(tmp_path / "exec") as runtime:
        yield runtime


def test_pull_and_run_an_image_built_by_dockerd(rt, layered):
    out = rt.out("pull", layered)
    for line in ("1: Pulling from layered", "Pulling fs layer", "Download complete",
                 "Pull complete", "Digest: sha256:",
                 f"Status: Downloaded newer image for {layered}"):
        assert line in out, out
    # CMD, WORKDIR and ENV of the image config; whiteouts applied
    assert rt.out("run", "--rm", layered) == "one"
    listing = rt.out("run", "--rm", layered, "sh", "-c", 'ls /data /opq; echo $GREETING; pwd')
    assert listing.split() == ["/data:", "a", "/opq:", "new", "hi", "/data"]
    inspect = json.loads(rt.out("image", "inspect", layered))[0]
    assert len(inspect["RootFS"]["Layers"]) == 3
    assert inspect["RepoDigests"] == [f"{layered.rsplit(':', 1)[0]}@"
                                      f"{out.split('Digest: ')[1].split()[0]}"]
    assert inspect["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert inspect["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", "true"]
    again = rt.out("pull", layered)
    assert f"Status: Image is up to date for {layered}" in again
    # the image's HEALTHCHECK and EXPOSE reach its containers
    cid = rt.out("run", "-d", layered, "sleep", "60")
    deadline = time.monotonic() + 60
    while rt.out("inspect", "-f", "{{.State.Health.Status}}", cid) != "healthy":
        assert time.monotonic() < deadline, "the image's health check never passed"
        time.sleep(0.5)
    assert "8080/tcp" in rt.out("ps", "--format", "{{.Ports}}")
    rt.docker("rm", "-f", cid)


def test_layers_are_shared_and_unpacked_once(rt, layered, registry, engine):
    rt.out("pull", layered)
    other = registry.ref("shared:2")
    engine.docker("tag", "busybox:latest", other)
    engine.docker("push", other)
    engine.docker("rmi", other)
    out = rt.out("pull", other)
    assert "Already exists" in out and "Pulling fs layer" not in out, out
    unpacked = os.listdir(rt.state_dir / "layers" / "unpacked")
    assert len(unpacked) == 3  # busybox's layer once, for both images
    rt.out("rmi", layered)
    assert rt.out("run", "--rm", other, "echo", "still") == "still"
    assert len(os.listdir(rt.state_dir / "layers" / "unpacked")) == 1  # only busybox's


def test_run_of_a_missing_image_pulls_it_and_by_digest(rt, layered):
    proc = rt.docker("run", "--rm", layered, "echo", "ran")
    assert proc.stdout.decode().strip() == "ran"
    assert f"Unable to find image '{layered}' locally" in proc.stderr.decode()
    digest = json.loads(rt.out("image", "inspect", layered))[0]["RepoDigests"][0]
    rt.out("rmi", layered)
    out = rt.out("pull", digest)
    assert f"Status: Downloaded newer image for {digest}" in out
    assert rt.out("run", "--rm", digest, "cat", "/data/a") == "one"
    assert json.loads(rt.out("image", "inspect", digest))[0]["RepoTags"] == []
    refused = rt.docker("tag", "busybox", digest, check=False)
    assert refused.returncode != 0


def test_oci_index_picks_this_nodes_platform(rt, registry):
    base = busybox_rootfs_tar()
    entries = []
    for arch in (OTHER_ARCH, ARCH):
        marker = oci_images.tar_of({"platform": arch.encode() + b"\n"})
        _, entry = oci_images.push_image(registry.address, "multi", f"only-{arch}",
                                         [base, marker], arch=arch,
                                         config={"Cmd": ["cat", "/platform"]})
        entries.append(entry)
    oci_images.push_index(registry.address, "multi", "1", entries)
    ref = registry.ref("multi:1")
    rt.out("pull", ref)
    assert rt.out("run", "--rm", ref) == ARCH
    assert json.loads(rt.out("image", "inspect", ref))[0]["Architecture"] == ARCH
    oci_images.push_index(registry.address, "multi", "foreign", entries[:1])
    proc = rt.docker("pull", registry.ref("multi:foreign"), check=False)
    assert proc.returncode != 0
    assert f"no matching manifest for linux/{ARCH} in the manifest list entries" \
        in proc.stderr.decode()


def test_registry_faults_answer_as_dockerd_does(rt, registry, engine):
    for ref in (registry.ref("nosuch:1"), registry.ref("busybox-none:nope")):
        mine = rt.docker("pull", ref, check=False)
        theirs = engine.docker("pull", ref, check=False)
        assert mine.returncode != 0 and mine.stderr == theirs.stderr, theirs.stderr
        assert b"not found: manifest unknown" in mine.stderr
    status, _, body = raw(rt.socket, "POST", "/images/create?fromImage=127.0.0.1:1/x&tag=1")
    assert status == 500
    assert json.loads(body)["message"] == ('Get "http://127.0.0.1:1/v2/": dial tcp '
                                           '127.0.0.1:1: connect: connection refused')
    status, _, body = raw(rt.socket, "POST", "/images/create?fromImage=" + registry.ref("x"))
    assert status == 501 and "one tag at a time" in json.loads(body)["message"]


def test_a_layer_with_the_wrong_digest_leaves_nothing(rt, registry):
    layer = oci_images.tar_of({"payload": os.urandom(4096)})
    oci_images.push_image(registry.address, "corrupt", "1", [busybox_rootfs_tar(), layer])
    packed = oci_images.digest(__import__("gzip").compress(layer, mtime=0))
    path = oci_images.blob_file(registry.root, packed)
    good = path.read_bytes()
    path.write_bytes(bytes(b ^ 0xFF for b in good))  # same length, other bytes
    try:
        proc = rt.docker("pull", registry.ref("corrupt:1"), check=False)
        assert proc.returncode != 0
        assert f"filesystem layer verification failed for digest {packed}" \
            in proc.stderr.decode()
        assert not rt.out("images", "-q", registry.ref("corrupt:1"))
        layers = rt.state_dir / "layers"
        assert not os.listdir(layers / "partial")
        assert not (layers / "blobs" / "sha256" / packed.split(":")[1]).exists()
    finally:
        path.write_bytes(good)
    assert "Downloaded newer image" in rt.out("pull", registry.ref("corrupt:1"))


def test_a_pull_cut_off_halfway_resumes_with_range(rt, registry):
    payload = os.urandom(3 << 20)  # random: gzip keeps it about this big
    layer = oci_images.tar_of({"random": payload})
    oci_images.push_image(registry.address, "resume", "1", [busybox_rootfs_tar(), layer])
    packed = oci_images.digest(__import__("gzip").compress(layer, mtime=0))
    proxy = CuttingProxy(("127.0.0.1", registry.port))
    try:
        proxy.cut_path, proxy.cut_after = packed, 1 << 20
        ref = f"{proxy.address}/resume:1"
        first = rt.docker("pull", ref, check=False)
        assert first.returncode != 0 and b"unexpected EOF" in first.stderr, first.stderr
        partial = rt.state_dir / "layers" / "partial" / packed.split(":")[1]
        kept = partial.stat().st_size
        assert 0 < kept < len(payload)
        assert not rt.out("images", "-q", ref)
        second = rt.out("pull", ref)
        assert "Downloaded newer image" in second
        ranged = [h for h in proxy.heads if packed in h.split("\r\n")[0]]
        assert any(f"range: bytes={kept}-" in h.lower() for h in ranged), ranged
        assert rt.out("run", "--rm", ref, "wc", "-c", "/random").split()[0] \
            == str(len(payload))
    finally:
        proxy.close()


def test_push_and_tag(rt, registry, layered):
    rt.out("pull", layered)
    mine = registry.ref("again:7")
    rt.out("tag", layered, mine)
    out = rt.out("push", mine)
    assert "The push refers to repository" in out and "7: digest: sha256:" in out
    assert registry.tags("again") == ["7"]
    # an imported image has no blobs: one layer is made from its root
    rt.import_busybox("homemade:1", 'CMD ["sh"]')
    rt.out("tag", "homemade:1", registry.ref("homemade:1"))
    assert "1: digest: sha256:" in rt.out("push", registry.ref("homemade:1"))
    with running_runtime(rt.state_dir.parent / "other") as other:
        other.out("pull", registry.ref("homemade:1"))
        assert other.out("run", "--rm", registry.ref("homemade:1"), "echo", "ok") == "ok"


@pytest.fixture(scope="module")
def locked_registry(tmp_path_factory, engine):
    """A registry behind htpasswd (basic auth), holding busybox pushed by dockerd after
    its own `docker login`."""
    root = tmp_path_factory.mktemp("locked")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode()
    (root / "htpasswd").write_text(f"alice:{hashed}\n")
    made = start_registry(root / "registry", extra_config=(
        f"auth:\n  htpasswd:\n    realm: flock-test\n    path: {root / 'htpasswd'}\n"))
    config = root / "engine-cli"
    engine.docker("--config", str(config), "login", "-u", "alice", "--password-stdin",
                  made.address, input=b"s3cret")
    made.push_busybox(engine, "private:1", config)
    yield made
    made.stop()


def test_basic_auth_with_docker_login(rt, locked_registry, tmp_path):
    ref = locked_registry.ref("private:1")
    bare = rt.docker("pull", ref, check=False)
    assert bare.returncode != 0
    assert bare.stderr.decode().strip() == (f'Error response from daemon: Head "http://'
                                            f'{locked_registry.address}/v2/private/manifests/'
                                            f'1": no basic auth credentials')
    bad = base64.urlsafe_b64encode(json.dumps(
        {"username": "alice", "password": "nope",
         "serveraddress": locked_registry.address}).encode()).decode()
    status, _, body = raw(rt.socket, "POST", f"/images/create?fromImage={ref}",
                          headers={"X-Registry-Auth": bad})
    assert (status, json.loads(body)) == (500, {"message": "unauthorized: authentication "
                                                           "required"})  # as dockerd
    config = str(tmp_path / "cli")
    wrong = rt.docker("--config", config, "login", "-u", "alice", "--password-stdin",
                      locked_registry.address, input=b"nope", check=False)
    assert wrong.returncode != 0, wrong.stderr
    assert b"failed with status: 401 Unauthorized" in wrong.stderr, wrong.stderr
    rt.docker("--config", config, "login", "-u", "alice", "--password-stdin",
              locked_registry.address, input=b"s3cret")
    out = rt.docker("--config", config, "pull", ref).stdout.decode()
    assert "Downloaded newer image" in out
    assert rt.out("run", "--rm", ref, "echo", "in") == "in"


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory, engine):
    """A registry with token auth: our tiny token server (docker-registry has none of
    its own) signs the Bearer tokens; dockerd logs in and pushes busybox through it."""
    root = tmp_path_factory.mktemp("token")
    tokens = TokenServer({"bob": "hunter2"}, root / "token.pem")
    made = start_registry(root / "registry", extra_config=tokens.registry_config())
    config = root / "engine-cli"
    engine.docker("--config", str(config), "login", "-u", "bob", "--password-stdin",
                  made.address, input=b"hunter2")
    made.push_busybox(engine, "team/private:1", config)
    yield made, tokens
    made.stop()
    tokens.close()


def test_bearer_token_auth(rt, token_registry, tmp_path):
    registry, tokens = token_registry
    ref = registry.ref("team/private:1")
    assert rt.docker("pull", ref, check=False).returncode != 0  # no credentials
    config = str(tmp_path / "cli")
    rt.docker("--config", config, "login", "-u", "bob", "--password-stdin", registry.address,
              input=b"hunter2")
    tokens.requests.clear()
    assert "Downloaded newer image" in rt.docker("--config", config, "pull", ref).stdout.decode()
    assert {"scope": ["repository:team/private:pull"], "service": [SERVICE],
            "client_id": ["docker"]} in tokens.requests
    assert rt.out("run", "--rm", ref, "echo", "token") == "token"


def test_pull_and_run_through_the_manager(exec_cluster, layered):
    def docker(*args: str, check: bool = True):
        return subprocess.run(["docker", "-H", exec_cluster.url, *args], capture_output=True,
                              timeout=120, check=check)

    out = docker("pull", layered).stdout.decode()
    for node in ("node-1", "node-2"):
        assert f"{node}: Status: Downloaded newer image for {layered}" in out, out
    assert docker("run", "--rm", "-e", "constraint:node==node-2", layered).stdout.strip() \
        == b"one"
    docker("rmi", layered)
    # a missing image: the CLI pulls it through the manager on create's 404
    run = docker("run", "--rm", layered, "cat", "/opq/new")
    assert run.stdout.strip() == b"new"
    assert f"Unable to find image '{layered}' locally" in run.stderr.decode()
    docker("rmi", layered)


def test_a_full_disk_ends_the_pull_cleanly(registry, tmp_path):
    """The runtime's state folder on a 6 MB tmpfs; the image has an 8 MB layer."""
    layer = oci_images.tar_of({"big": os.urandom(8 << 20)})
    oci_images.push_image(registry.address, "toobig", "1", [layer])
    state = tmp_path / "small"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(state)], check=True)
    runtime = RuntimeProcess(state)
    try:
        runtime.start()
        proc = runtime.docker("pull", registry.ref("toobig:1"), check=False)
        assert proc.returncode != 0
        assert b"no space left on device" in proc.stderr, proc.stderr
        assert not os.listdir(state / "layers" / "partial")
        assert not os.listdir(state / "layers" / "unpacked")
        assert not runtime.out("images", "-q")
    finally:
        runtime.cleanup()
        runtime.stop()
        subprocess.run(["umount", str(state)], check=True)
