"""Bad request bodies and unknown methods at the manager's Docker API (issue 16, item 3):
each gets a 400 (404 for a method) in the Engine's own words and creates nothing on
any node, and the manager keeps serving.

The words are checked against a live engine: the same body sent straight to one of
the test's dockerds must get the same message (dockerd 20.10 answers some of these
with a 500, newer engines with a 400 since moby#46628; the manager says 400). The
Engine's texts come from Go's encoding/json (decode.go UnmarshalTypeError, scanner.go
maxNestingDepth) and from its router's NotFoundHandler (api/server/server.go)."""

from __future__ import annotations

import json
import uuid

import docker
import pytest

from flock.manager.api.docker.json_body import MAX_DEPTH
from tests.support.cluster import Cluster

pytestmark = pytest.mark.docker
JSON = {"Content-Type": "application/json"}
DEEP = 100_000


@pytest.fixture(scope="module")
def engine_api(cluster):
    """The first node's engine, asked directly: the anchor for every message."""
    client = docker.APIClient(base_url=cluster.engines[0].url)
    yield client
    client.close()


def on_engine(client: docker.APIClient, method: str, path: str,
              body: bytes | None = None) -> tuple[int, str]:
    answer = client.request(method, f"{client.base_url}/v1.41{path}", data=body,
                            headers=JSON)
    return answer.status_code, answer.json()["message"]


def on_manager(cluster: Cluster, method: str, path: str,
               body: bytes | None = None) -> tuple[int, str]:
    status, answer, _ = cluster.api(method, "/v1.41" + path, body, JSON)
    assert isinstance(answer, dict), answer
    return status, answer["message"]


def everything(cluster: Cluster) -> dict[str, tuple[set, ...]]:
    """Engine -> (containers, networks, volumes) on it, by ID or name."""
    def names(engine, *args):
        return set(engine.docker(*args).stdout.decode().split())

    return {engine.socket: (names(engine, "ps", "-aq", "--no-trunc"),
                            names(engine, "network", "ls", "-q", "--no-trunc"),
                            names(engine, "volume", "ls", "-q"))
            for engine in cluster.engines}


@pytest.fixture
def nothing_made(cluster):
    before = everything(cluster)
    yield
    assert everything(cluster) == before, "a refused request left something on a node"
    assert cluster.api("GET", "/_ping")[0] == 200


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("path,body", [
    ("/containers/create", b'{"Image":"busybox","NetworkingConfig":"x"}'),
    ("/containers/create", b'{"Image":"busybox","NetworkingConfig":[1]}'),
    ("/containers/create", b'{"Image":"busybox","HostConfig":{"Memory":1e400}}'),
    ("/containers/create", b'{"Image":"busybox","HostConfig":{"Memory":NaN}}'),
    ("/containers/create", b'{"Image":"busybox","HostConfig":{"Memory":Infinity}}'),
    ("/containers/create", b'{"Image":"busybox","Cmd":[1]}'),
    ("/networks/create", b'{"Name":"bad-labels","Labels":"x"}'),
    ("/networks/create", b'{"Name":"bad-labels","Labels":[1]}'),
    ("/networks/create", b'{"Name":"bad-ipam","IPAM":{"Config":[{"Subnet":5}]}}'),
    ("/volumes/create", b""),
    ("/volumes/create", b"[]"),
    ("/volumes/create", b'"x"'),
    ("/volumes/create", b'{"Name":"bad-opts","DriverOpts":[]}'),
])
def test_a_bad_body_is_the_engines_400_and_makes_nothing(cluster, engine_api, nothing_made,
                                                         path, body):
    status, message = on_manager(cluster, "POST", path, body)
    assert (status, message) == (400, on_engine(engine_api, "POST", path, body)[1])
    assert message.startswith(("json: cannot unmarshal", "invalid character",
                               "got EOF while reading request body"))


@pytest.mark.parametrize("path", ["/containers/create", "/networks/create",
                                  "/volumes/create"])
def test_json_nested_100000_deep_is_a_400_not_a_recursion(cluster, engine_api, nothing_made,
                                                          path):
    body = b'{"Name":"deep","Image":"busybox","Labels":' + nested(DEEP) + b"}"
    status, message = on_manager(cluster, "POST", path, body)
    assert status == 400
    assert message.startswith(on_engine(engine_api, "POST", path, body)[1])
    assert message.startswith("invalid character '[' exceeded max depth")


def test_update_refuses_memory_that_is_not_an_int64(cluster, engine_api):
    name = f"upd-{uuid.uuid4().hex[:6]}"
    cluster.docker("run", "-d", "--name", name, "-m", "64m", "busybox", "sleep", "300")
    try:
        real = cluster.docker("inspect", "-f", "{{.Id}}", name).stdout.decode().strip()
        for memory in (b"1e400", b"NaN", b"Infinity", b"1.5"):
            body = b'{"Memory":' + memory + b"}"
            status, message = on_manager(cluster, "POST", f"/containers/{name}/update", body)
            # The engine checks the body before it looks for the container.
            expected = on_engine(engine_api, "POST", f"/containers/{real}/update", body)[1]
            assert (status, message) == (400, expected)
        memory = cluster.docker("inspect", "-f", "{{.HostConfig.Memory}}", name).stdout
        assert memory.decode().strip() == str(64 << 20)
    finally:
        cluster.docker("rm", "-f", name, check=False)


def test_good_bodies_still_pass(cluster, nothing_made):
    """The checks refuse only what the Engine refuses: a string Cmd (strslice), nulls,
    unknown fields and any letter case are the Engine's to take, and so is nesting up to
    the manager's cap (on its way to the node without a recursion error either)."""
    name = f"ok-{uuid.uuid4().hex[:6]}"
    body = {"Image": "busybox", "Cmd": "sleep 300", "Entrypoint": None, "NotAField": [1.5],
            "hostconfig": {"Memory": 64 << 20, "CapAdd": None, "Foo": {"Bar": 1}}}
    raw = json.dumps(body).encode()[:-1] + b', "Deep": ' + nested(MAX_DEPTH - 1) + b"}"
    status, answer, _ = cluster.api("POST", f"/v1.41/containers/create?name={name}", raw,
                                    JSON)
    try:
        assert status == 201, answer
        memory = cluster.docker("inspect", "-f", "{{.HostConfig.Memory}}", name).stdout
        assert memory.decode().strip() == str(64 << 20)
    finally:
        cluster.docker("rm", "-f", name, check=False)


@pytest.mark.parametrize("method,path", [
    ("PURGE", "/containers/json"), ("PATCH", "/v1.41/containers/json"), ("PATCH", "/_ping"),
    ("PROPFIND", "/v1.41/volumes/create"), ("GET", "/v1.41/nothing/here"),
    ("HEAD", "/v1.41/containers/json"),
])
def test_what_no_engine_serves_is_its_404(cluster, engine_api, method, path):
    """(A method aiohttp's parser does not know at all, such as BREW, is refused by it
    with a 400 before the manager sees the request.)"""
    status, answer, _ = cluster.api(method, path)
    engine = engine_api.request(method, f"{engine_api.base_url}{path}")
    assert status == engine.status_code == 404
    if method != "HEAD":  # a HEAD answer has no body
        assert answer == engine.json() == {"message": "page not found"}


def test_an_engine_endpoint_the_manager_lacks_is_still_a_501(cluster):
    status, message = on_manager(cluster, "GET", "/swarm")
    assert status == 501 and "is not supported by the manager" in message


def test_options_is_an_empty_200_as_from_the_engine(cluster, engine_api):
    engine = engine_api.request("OPTIONS", f"{engine_api.base_url}/v1.41/containers/json")
    assert (engine.status_code, engine.content) == (200, b"")
    status, answer, _ = cluster.api("OPTIONS", "/v1.41/containers/json")
    assert (status, answer) == (200, None)


@pytest.mark.parametrize("path", ["/containers/json", "/networks", "/volumes", "/images/json"])
def test_filters_nested_too_deep_are_a_400_not_a_500(cluster, path):
    """The `filters` query is JSON too: 2,000 levels (past Python's recursion limit,
    within a request line) used to raise RecursionError in the manager -> a 500."""
    deep = "[" * 2000 + "]" * 2000
    status, answer, _ = cluster.api("GET", f"/v1.41{path}?filters={deep}")
    assert status == 400, answer
    assert "exceeded max depth" in answer["message"]
    status, _, _ = cluster.api("GET", "/v1.41/containers/json")
    assert status == 200  # and the manager keeps serving


def test_buildargs_nested_too_deep_are_a_400_not_a_500(cluster):
    deep = "[" * 2000 + "]" * 2000
    status, answer, _ = cluster.api("POST", f"/v1.41/build?buildargs={deep}", b"not a tar")
    assert status == 400, answer
    assert answer["message"].startswith("invalid buildargs:")
