"""`docker system df` and `docker builder prune` through the manager: every node asked,
the answers summed, names qualified as in the listings (manager/api/docker/usage.py).
The manager answered 501 to both while the engines do them (found by the API fuzz,
tests/integration/test_api_fuzz.py)."""

from __future__ import annotations

import uuid

import docker
import pytest

from tests.support.api_fuzz import engine_target

pytestmark = pytest.mark.docker


def test_system_df_sums_the_nodes_and_names_what_is_where(cluster, engine_pair):
    tag = uuid.uuid4().hex[:6]
    before = cluster.container_ids()
    cluster.docker("create", "--name", f"df-{tag}", "-e", "constraint:node==node-b",
                   "busybox", "true")
    cluster.docker("volume", "create", f"node-a/dfv-{tag}")
    try:
        status, usage, _ = cluster.api("GET", "/v1.41/system/df")
        assert status == 200, usage
        layers = [docker.APIClient(base_url=e.url).df()["LayersSize"] for e in engine_pair]
        assert usage["LayersSize"] == sum(layers)
        names = [n for c in usage["Containers"] for n in c["Names"]]
        assert f"/node-b/df-{tag}" in names
        assert f"node-a/dfv-{tag}" in [v["Name"] for v in usage["Volumes"]]
        assert {"busybox:latest"} <= {t for i in usage["Images"] for t in i["RepoTags"] or []}
        proc = cluster.docker("system", "df")  # the real CLI reads the summed answer
        assert b"Local Volumes" in proc.stdout
    finally:
        cluster.docker("volume", "rm", f"node-a/dfv-{tag}", check=False)
        cluster.remove_new_containers(before)


def test_builder_prune_asks_every_node_and_relays_a_refusal(cluster, engine_pair):
    proc = cluster.docker("builder", "prune", "-f")
    assert b"Total reclaimed space" in proc.stdout
    status, answer, _ = cluster.api("POST", "/v1.41/build/prune?filters=x")
    engine = engine_target(engine_pair[0].socket, 30)
    direct = engine.session.post(f"{engine.base}/build/prune", params={"filters": "x"})
    assert status == direct.status_code  # the engine's own status (500 here)
    said = direct.json()["message"]
    assert answer["message"] in (f"node-a: {said}", f"node-b: {said}")  # the first to refuse
