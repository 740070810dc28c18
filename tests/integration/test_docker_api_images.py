"""Images across the fleet with a real local registry (Debian's docker-registry):
pull fans out with per-node progress, push from the node that has the image, rmi and
load fan out, images merges, save and history come from one node."""

from __future__ import annotations

import io
import json
import tarfile

import docker
import pytest

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def registry(registry, engine_pair):
    """The shared one (tests/integration/conftest.py), holding busybox as REG/busybox:1,
    pushed by an engine directly."""
    registry.push_busybox(engine_pair[0], "busybox:1")
    return registry


@pytest.fixture
def cleanup(cluster, registry):
    yield
    for engine in cluster.engines:
        out = engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode()
        mine = [ref for ref in out.split() if ref.startswith(registry.address)]
        if mine:
            engine.docker("rmi", "-f", *mine, check=False)


def has(engine, ref: str) -> bool:
    return engine.docker("image", "inspect", ref, check=False).returncode == 0


def test_pull_runs_on_every_node_with_per_node_progress(cluster, registry, cleanup):
    ref = registry.ref("busybox:1")
    out = cluster.docker("pull", ref).stdout.decode()
    assert "node-a: Status: Downloaded newer image" in out
    assert "node-b: Status: Downloaded newer image" in out
    assert all(has(engine, ref) for engine in cluster.engines)
    listed = cluster.docker("images", "-a", "--format", "{{.Repository}}:{{.Tag}}").stdout
    assert listed.decode().split().count(ref) == 1  # one image ID: merged
    only = cluster.docker("images", "--filter", f"reference={registry.address}/*",
                          "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()
    assert only == [ref]
    history = cluster.docker("history", "--format", "{{.Comment}}", ref).stdout.decode()
    assert "Imported from -" in history


def test_push_from_the_node_that_has_the_image(cluster, registry, cleanup):
    pushed = registry.ref("pushed:2")
    cluster.engines[1].docker("tag", "busybox:latest", pushed)  # only node-b has it
    out = cluster.docker("push", pushed).stdout.decode()
    assert "2: digest: sha256:" in out
    assert registry.tags("pushed") == ["2"]
    proc = cluster.docker("push", registry.ref("nosuch:1"), check=False)
    assert proc.returncode != 0 and b"No such image" in proc.stderr


def test_rmi_save_and_load_fan_out(cluster, registry, cleanup, tmp_path):
    ref = registry.ref("busybox:1")
    cluster.docker("pull", ref)
    archive = tmp_path / "saved.tar"
    cluster.docker("save", "-o", str(archive), ref)
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [ref]
    out = cluster.docker("rmi", ref).stdout.decode()
    assert f"Untagged: {ref}" in out
    assert not any(has(engine, ref) for engine in cluster.engines)
    out = cluster.docker("load", "-i", str(archive)).stdout.decode()
    assert f"node-a: Loaded image: {ref}" in out and f"node-b: Loaded image: {ref}" in out
    assert all(has(engine, ref) for engine in cluster.engines)


def test_pull_of_a_missing_image_names_each_node(cluster, registry):
    proc = cluster.docker("pull", registry.ref("nosuch:1"), check=False)
    assert proc.returncode != 0
    assert b"manifest unknown" in proc.stderr or b"not found" in proc.stderr
    assert b"node-a" in proc.stderr or b"node-b" in proc.stderr
    status, body, _ = cluster.api("POST", "/images/create")
    assert status == 400 and body["message"] == "either fromImage or fromSrc must be given"


def test_build_goes_where_its_build_arg_constraints_say(cluster):
    """Classic Swarm's form: `--build-arg constraint:node==node-b`. The rule picks the
    node and is not passed on to the engine as a build arg."""
    dockerfile = b"FROM busybox:latest\nRUN echo built > /built\n"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    client = docker.APIClient(base_url=cluster.url.replace("tcp://", "http://"))
    try:
        for target in ("node-b", "node-a"):
            tag = f"built-on-{target}:1"
            context.seek(0)
            # rm=True as `docker build` sends it (docker-py's default keeps the RUN
            # step's container on the engine).
            lines = list(client.build(fileobj=context, custom_context=True, tag=tag,
                                      buildargs={"constraint:node": f"={target}"},
                                      decode=True, rm=True))
            assert not any("error" in line for line in lines), lines
            assert not any("not consumed" in str(line) for line in lines), lines
            holders = [name for name, engine in zip(cluster.names, cluster.engines,
                                                    strict=True) if has(engine, tag)]
            assert holders == [target]
        context.seek(0)
        with pytest.raises(docker.errors.APIError) as failed:
            list(client.build(fileobj=context, custom_context=True, tag="nowhere:1",
                              buildargs={"constraint:node": "=mars"}, decode=True))
        assert "Unable to find a node" in str(failed.value)
        context.seek(0)
        with pytest.raises(docker.errors.APIError) as bad:
            list(client.build(fileobj=context, custom_context=True, tag="bad:1",
                              buildargs={"constraint:node": "=~/[/"}, decode=True))
        assert bad.value.status_code == 400
    finally:
        for engine in cluster.engines:
            engine.docker("rmi", "-f", "built-on-node-a:1", "built-on-node-b:1", check=False)
