"""Fixtures the integration modules share: the module's `cluster`, what is built on it
(`names`, a ClusterService client), a local registry, a local EC2 API (moto), a
headless Chromium for the cluster page, and for the exec runtime modules an SDK `client`
on the module's `rt` and a `flock up`-style `exec_cluster`.

`cluster` is one module-wide Flock cluster on the session's two engines, made as the
module declares it in a module-level dict `CLUSTER` of tests.support.cluster.Cluster's
options (names, strategy, labels, client_limits, agent_options, manager_options), e.g.
`CLUSTER = dict(names=["node-1", "node-2"], strategy="binpack")`; without one, nodes
node-a and node-b and every default. A module that needs other engines or real
processes (TLS, exec agents, replication) defines a `cluster` fixture of its own, which
takes precedence, built on the same Cluster (a context manager).
"""

from __future__ import annotations

import docker
import grpc
import pytest

from flock.local_cluster import LocalCluster
from flock.protos import cluster_pb2_grpc
from tests.support import browser as chromium
from tests.support.cluster import Cluster, unique_name
from tests.support.moto import MotoServer, register_debian_ami
from tests.support.registry import have_registry, start_registry

DEFAULT_NODES = ("node-a", "node-b")


@pytest.fixture(scope="module")
def cluster(request, engine_pair, tmp_path_factory):
    """The module's cluster, as its `CLUSTER` says (see the module docstring)."""
    options = {"names": DEFAULT_NODES, **getattr(request.module, "CLUSTER", {})}
    folder = tmp_path_factory.mktemp(request.module.__name__.rpartition(".test_")[2])
    with Cluster(engine_pair, folder, **options) as made:
        yield made


@pytest.fixture
def names(cluster):
    """Unique container names (`names("web")` -> `web-1a2b3c`); whatever a test made on
    the module's cluster is removed afterwards."""
    before = cluster.container_ids()
    yield unique_name
    cluster.remove_new_containers(before)


@pytest.fixture
def name(names):
    """The same, under the name some modules' tests ask for."""
    return names


@pytest.fixture
def service(cluster):
    """A ClusterService client on the module's cluster (its `grpc_addr`, plaintext)."""
    channel = grpc.insecure_channel(cluster.grpc_addr)
    yield cluster_pb2_grpc.ClusterServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A real local registry (Debian's docker-registry), empty."""
    if not have_registry():
        pytest.fail("docker-registry is not installed: run scripts/test.sh")
    made = start_registry(tmp_path_factory.mktemp("registry"))
    yield made
    made.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium (WebDriver), one per module; it accepts a test CA's server cert
    (the TLS page tests), which changes nothing for plain HTTP."""
    why = chromium.missing()
    if why:
        pytest.fail(why)
    folder = tmp_path_factory.mktemp("chromium")
    made = chromium.start(folder / "profile", folder / "chromedriver.log", insecure_certs=True)
    yield made
    made.close()


@pytest.fixture
def client(rt):
    """A Docker SDK client on the module's exec runtime (its `rt` fixture)."""
    sdk = docker.DockerClient(base_url=rt.url, version="1.41", timeout=30)
    yield sdk
    sdk.close()


@pytest.fixture(scope="module")
def exec_cluster(tmp_path_factory):
    """A manager and two exec agents, each its own process (flock up's cluster)."""
    cluster = LocalCluster(agents=2, runtime="exec",
                           state_dir=tmp_path_factory.mktemp("cluster") / "state")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A real local EC2 API (moto_server), one per module; `ec2` empties it per test."""
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.stop()


@pytest.fixture
def ec2(moto):
    """The test's own boto3 client on an emptied moto: what exists is what the test made."""
    moto.reset()
    return moto.client()


@pytest.fixture
def debian_ami(ec2):
    return register_debian_ami(ec2)
