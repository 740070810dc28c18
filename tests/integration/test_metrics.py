"""Observability against a real cluster: two real dockerd, two `flock join` agents
(docker runtime, `--metrics-addr`) and a `flock manage`, all real processes logging
JSON at debug level, driven through the Docker SDK and plain HTTP.

- `/metrics` on the manager parses with prometheus_client's parser and moves after a
  `docker run` (decisions, API requests by route template, agent RPCs); a constraint
  no node matches counts a rejection for the constraint filter;
- the agents' `/metrics` count the RPCs they served and the runtime's answers;
- an X-Request-ID comes back in the answer and shows up in the manager's and the
  serving agent's log lines; a new ID is made when the client sends none or a bad one;
- every log line of the three processes is one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import docker
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import REPO, Proc, free_port, wait_for

pytestmark = pytest.mark.docker

LOG = ["--log-format", "json", "-l", "debug"]


class Cluster:
    def __init__(self, engines, folder) -> None:
        self.agents: list[Proc] = []
        self.metrics_ports: list[int] = []
        addrs = []
        for index, engine in enumerate(engines):
            port, metrics = free_port(), free_port()
            name = f"obs-{index}-{uuid.uuid4().hex[:4]}"
            self.agents.append(Proc(name, [
                *LOG, "join", "--advertise", f"127.0.0.1:{port}", "--runtime", "docker",
                "--docker-host", engine.url, "--name", name, "--state-dir",
                str(folder / name), "--heartbeat", "1s", "--label", f"zone=z{index}",
                "--metrics-addr", f"127.0.0.1:{metrics}"], folder))
            self.metrics_ports.append(metrics)
            addrs.append(f"127.0.0.1:{port}")
        self.port = free_port()
        self.manager = Proc("manager", [
            *LOG, "manage", "-H", f"tcp://127.0.0.1:{self.port}", "--heartbeat", "1s",
            "nodes://" + ",".join(addrs)], folder)
        self.names = [agent.name for agent in self.agents]

    def start(self) -> None:
        for proc in (*self.agents, self.manager):
            proc.start()
        wait_for(lambda: self.healthy() == len(self.agents), 60, "every node healthy")

    def stop(self) -> None:
        for proc in (self.manager, *self.agents):
            proc.stop()

    def healthy(self) -> float:
        try:
            return metric(self.scrape(), "flock_nodes", health="healthy")
        except OSError:
            return 0

    def scrape(self, port: int | None = None) -> str:
        url = f"http://127.0.0.1:{port or self.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return answer.read().decode()

    def request(self, method: str, path: str, body: object | None = None,
                headers: dict | None = None) -> tuple[int, dict, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
            headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, dict(answer.headers), answer.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


def metric(text: str, name: str, **labels: str) -> float:
    """The value of sample `name` with exactly these labels (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def total(text: str, name: str, **labels: str) -> float:
    """The sum of sample `name` over every sample whose labels include these."""
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def json_lines(proc: Proc) -> list[dict]:
    return [json.loads(line) for line in proc.output().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def cluster(engine_pair, tmp_path_factory):
    made = Cluster(engine_pair, tmp_path_factory.mktemp("observability"))
    try:
        made.start()
        yield made
    finally:
        made.stop()


@pytest.fixture
def client(cluster):
    """The Docker SDK on the manager; the containers a test made are removed after it."""
    sdk = docker.DockerClient(base_url=f"tcp://127.0.0.1:{cluster.port}", timeout=60)
    made: list[str] = []
    sdk.made = made
    yield sdk
    for ref in made:
        try:
            sdk.containers.get(ref).remove(force=True)
        except docker.errors.NotFound:
            pass
    sdk.close()


def test_metrics_parse_and_move_after_a_docker_run(cluster, client):
    before = cluster.scrape()
    families = {f.name: f.type for f in text_string_to_metric_families(before)}
    assert families | {
        "flock_scheduler_decisions": "counter", "flock_scheduler_decision_seconds": "histogram",
        "flock_scheduler_filter_rejections": "counter", "flock_nodes": "gauge",
        "flock_api_requests": "counter", "flock_api_request_duration_seconds": "histogram",
        "flock_agent_rpc_duration_seconds": "histogram", "flock_gc_pause_seconds": "histogram",
    } == families
    assert metric(before, "flock_nodes", health="healthy") == 2

    container = client.containers.run("busybox", ["sleep", "30"], detach=True,
                                      name=f"obs-{uuid.uuid4().hex[:6]}")
    client.made.append(container.id)
    after = cluster.scrape()

    def moved(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert moved("flock_scheduler_decisions_total", outcome="placed") == 1
    assert moved("flock_scheduler_decision_seconds_count") == 1
    assert moved("flock_api_requests_total", method="POST", endpoint="/containers/create",
                 code="201") == 1
    assert moved("flock_api_requests_total", method="POST",
                 endpoint="/containers/{id*}/start", code="204") == 1
    # the create and the start went to the agent; the heartbeats too, all timed
    assert (total(after, "flock_agent_rpc_duration_seconds_count")
            > total(before, "flock_agent_rpc_duration_seconds_count"))
    # route templates only: no container ID in any label
    for family in text_string_to_metric_families(after):
        for sample in family.samples:
            assert not any(container.id[:12] in value for value in sample.labels.values())


def test_a_constraint_no_node_matches_counts_a_rejection_by_the_constraint_filter(
        cluster, client):
    before = cluster.scrape()
    with pytest.raises(docker.errors.APIError, match="zone==nowhere"):
        client.containers.create("busybox", ["true"], environment=["constraint:zone==nowhere"])
    after = cluster.scrape()
    assert (metric(after, "flock_scheduler_filter_rejections_total", filter="constraint")
            - metric(before, "flock_scheduler_filter_rejections_total", filter="constraint")) == 1
    assert (metric(after, "flock_scheduler_decisions_total", outcome="no_node")
            - metric(before, "flock_scheduler_decisions_total", outcome="no_node")) == 1
    assert (metric(after, "flock_scheduler_filter_rejections_total", filter="port")
            == metric(before, "flock_scheduler_filter_rejections_total", filter="port"))
    assert metric(after, "flock_api_requests_total", method="POST",
                  endpoint="/containers/create", code="500") >= 1


def test_agents_serve_their_own_metrics(cluster, client):
    container = client.containers.run("busybox", ["sleep", "30"], detach=True)
    client.made.append(container.id)
    # The first heartbeat comes a jittered second after a node turns healthy, which a
    # quick run of the tests before this one can beat: wait for it.
    wait_for(lambda: all(
        metric(cluster.scrape(port), "flock_agent_rpcs_total", method="Heartbeat",
               code="OK") > 0 for port in cluster.metrics_ports), 10, "a heartbeat on each")
    texts = [cluster.scrape(port) for port in cluster.metrics_ports]
    for text in texts:
        assert metric(text, "flock_agent_rpcs_total", method="Heartbeat", code="OK") > 0
        assert metric(text, "flock_agent_rpcs_total", method="Info", code="OK") > 0
    # the node that got the container answered its create and start through its runtime
    served = [total(t, "flock_agent_runtime_request_duration_seconds_count", method="POST")
              for t in texts]
    assert max(served) >= 2


def test_the_manager_shows_its_agents_calls_travelling_on_call_links(cluster, client):
    container = client.containers.run("busybox", ["sleep", "30"], detach=True)
    client.made.append(container.id)
    # The first call to a node opens its link beside the gRPC stream; the link takes over
    # once the agent has said ok, and the stream closes once its calls are answered.
    wait_for(lambda: metric(cluster.scrape(), "flock_agent_call_carriers",
                            carrier="link") >= 1, 10, "a call link open")
    text = cluster.scrape()
    assert metric(text, "flock_agent_call_carriers", carrier="link") <= len(
        cluster.metrics_ports)
    wait_for(lambda: metric(cluster.scrape(), "flock_agent_call_carriers",
                            carrier="stream") == 0, 10, "the gRPC streams closed")


def test_a_request_id_follows_the_request_into_the_agent_log(cluster, client):
    request_id = f"test-{uuid.uuid4().hex}"
    name = f"rid-{uuid.uuid4().hex[:6]}"
    status, headers, body = cluster.request(
        "POST", f"/containers/create?name={name}", {"Image": "busybox", "Cmd": ["true"]},
        headers={"X-Request-ID": request_id})
    assert status == 201, body
    client.made.append(json.loads(body)["Id"])
    assert headers["X-Request-ID"] == request_id

    def tagged(proc: Proc) -> list[dict]:
        return [e for e in json_lines(proc) if e["request_id"] == request_id]

    # the manager logged the request; the agent of the node it went to logged the create
    wait_for(lambda: tagged(cluster.manager), 10, "the manager's line for the request")
    agent_lines = wait_for(lambda: [e for a in cluster.agents for e in tagged(a)], 10,
                           "an agent line carrying the request ID")
    assert any("POST /containers/create -> 201" in e["message"] for e in agent_lines)
    # another request's ID stays out of it
    other = cluster.request("GET", f"/containers/{name}/json")[1]["X-Request-ID"]
    assert other != request_id


@pytest.mark.parametrize("sent", [None, "has spaces", "x" * 300])
def test_a_missing_or_bad_request_id_is_replaced_by_a_new_one(cluster, sent):
    headers = {"X-Request-ID": sent} if sent is not None else {}
    status, answer, _ = cluster.request("GET", "/_ping", headers=headers)
    assert status == 200
    made = answer["X-Request-ID"]
    assert made != sent and len(made) == 32 and int(made, 16) >= 0


def test_streamed_answers_carry_the_request_id_too(cluster):
    request_id = f"stream-{uuid.uuid4().hex[:8]}"
    request = urllib.request.Request(
        f"http://127.0.0.1:{cluster.port}/events?until=1", headers={"X-Request-ID": request_id})
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.headers["X-Request-ID"] == request_id


def test_every_log_line_is_one_json_object(cluster):
    for proc in (cluster.manager, *cluster.agents):
        lines = proc.output().splitlines()
        assert lines, f"{proc.name} logged nothing"
        for line in lines:
            entry = json.loads(line)  # raises on a line that is not JSON
            assert {"time", "level", "logger", "message", "request_id"} <= set(entry), line
    levels = {e["level"] for e in json_lines(cluster.manager)}
    assert {"INFO", "DEBUG"} <= levels


def test_metrics_with_a_version_prefix(cluster):
    request = urllib.request.Request(f"http://127.0.0.1:{cluster.port}/v1.41/metrics")
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    assert metric(text, "flock_nodes", health="healthy") == 2


def _join(*extra: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flock", "join", "--advertise", f"127.0.0.1:{free_port()}",
         "--runtime", "exec", "--state-dir", str(tmp_path / "agent"), *extra],
        capture_output=True, text=True, timeout=60, cwd=REPO)


def test_a_bad_metrics_address_is_a_clear_error(tmp_path):
    proc = _join("--metrics-addr", "nowhere", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "invalid --metrics-addr 'nowhere': expected HOST:PORT" in proc.stderr


def test_a_metrics_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _join("--metrics-addr", f"127.0.0.1:{port}", tmp_path=tmp_path)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port} for --metrics-addr" in proc.stderr
