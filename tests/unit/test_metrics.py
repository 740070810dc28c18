"""Metrics registry, the scheduler's decision metrics, route templates as labels, log
formats and request IDs: pure parts, checked with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from flock.common.logs import (
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    bind_request_id,
    current_request_id,
    make_handler,
    new_request_id,
    sane_request_id,
)
from flock.common.metrics import Registry
from flock.manager.api.docker.app import build_router
from flock.manager.cluster.model import DISCONNECTED, HEALTHY, PENDING, UNHEALTHY, Node
from flock.manager.cluster.state import ClusterState
from flock.manager.observability import ManagerMetrics
from flock.manager.scheduler import NoNodeAvailable, Scheduler, spec_from_create

GIB = 1024**3


def parse(text: str) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}} through prometheus_client's parser."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def families(text: str) -> dict[str, str]:
    return {f.name: f.type for f in text_string_to_metric_families(text)}


# ------------------------------------------------------------------ registry
def test_registry_renders_what_prometheus_parses():
    registry = Registry()
    hits = registry.counter("demo_hits_total", "Hits.", ["path"])
    hits.labels("/a").inc()
    hits.labels("/a").inc(2)
    hits.labels('we"ird\\\n').inc()
    latency = registry.histogram("demo_seconds", "Latency.", buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        latency.observe(value)
    registry.gauge("demo_nodes", "Nodes.", ["health"], lambda: {("ok",): 3, ("bad",): 0})
    text = registry.render()
    assert families(text) == {"demo_hits": "counter", "demo_seconds": "histogram",
                              "demo_nodes": "gauge"}
    samples = parse(text)
    assert samples["demo_hits_total"] == {(("path", "/a"),): 3.0,
                                          (("path", 'we"ird\\\n'),): 1.0}
    # buckets are cumulative and inclusive of their bound
    assert samples["demo_seconds_bucket"] == {(("le", "0.1"),): 2.0, (("le", "1.0"),): 3.0,
                                              (("le", "+Inf"),): 4.0}
    assert samples["demo_seconds_count"] == {(): 4.0}
    assert samples["demo_seconds_sum"][()] == pytest.approx(3.65)
    assert samples["demo_nodes"] == {(("health", "ok"),): 3.0, (("health", "bad"),): 0.0}


@pytest.mark.parametrize("make, message", [
    (lambda r: r.counter("bad name", "x"), "invalid metric name"),
    (lambda r: r.counter("x_total", "x", ["le"]), "invalid label name"),
    (lambda r: r.counter("x_total", "x", ["bad-label"]), "invalid label name"),
    (lambda r: r.histogram("x_seconds", "x", buckets=()), "buckets must be distinct"),
    (lambda r: r.histogram("x_seconds", "x", buckets=(1, 1)), "buckets must be distinct"),
])
def test_registry_refuses_bad_definitions(make, message):
    with pytest.raises(ValueError, match=message):
        make(Registry())


def test_registry_refuses_duplicates_wrong_label_counts_and_going_down():
    registry = Registry()
    counter = registry.counter("x_total", "x", ["a", "b"])
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("x_total", "again")
    with pytest.raises(ValueError, match=r"takes labels \['a', 'b'\], got 1 values"):
        counter.labels("only-one")
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels("1", "2").inc(-1)


# ------------------------------------------------------------------ scheduler
def _state(*nodes: Node) -> ClusterState:
    state = ClusterState()
    for node in nodes:
        state.upsert_node(node)
    return state


def _node(nid: str, health: str = HEALTHY, **labels) -> Node:
    return Node(nid, f"node-{nid}", f"{nid}:1", cpus=2, memory=GIB, labels=labels,
                health=health)


def test_decisions_latency_and_rejections_by_filter():
    state = _state(_node("a", zone="x"), _node("b", zone="y"), _node("c", UNHEALTHY),
                   _node("d", PENDING))
    scheduler = Scheduler()
    metrics = ManagerMetrics(state, scheduler.filter_names)
    scheduler.observer = metrics
    scheduler.place(state, spec_from_create({"Image": "busybox"}))
    scheduler.place(state, spec_from_create({"Image": "busybox", "Env": ["constraint:zone==x"]}))
    with pytest.raises(NoNodeAvailable):
        scheduler.place(state, spec_from_create({"Image": "busybox",
                                                 "Env": ["constraint:zone==nowhere"]}))
    with pytest.raises(NoNodeAvailable):
        scheduler.place(state, spec_from_create({"Image": "busybox",
                                                 "HostConfig": {"Memory": 4 * GIB}}))
    samples = parse(metrics.registry.render())
    assert samples["flock_scheduler_decisions_total"] == {
        (("outcome", "placed"),): 2.0, (("outcome", "no_node"),): 2.0,
        (("outcome", "error"),): 0.0}
    assert samples["flock_scheduler_decision_seconds_count"] == {(): 4.0}
    rejections = {dict(k)["filter"]: v
                  for k, v in samples["flock_scheduler_filter_rejections_total"].items()}
    # both failures had health remove the two nodes that are not healthy; the constraint
    # removed the rest in one, a memory shortage in the other
    assert rejections == {"health": 2.0, "constraint": 1.0, "resources": 1.0, "port": 0.0,
                          "containerslots": 0.0, "dependency": 0.0, "affinity": 0.0}
    assert samples["flock_nodes"] == {(("health", HEALTHY),): 2.0,
                                      (("health", UNHEALTHY),): 1.0,
                                      (("health", PENDING),): 1.0,
                                      (("health", DISCONNECTED),): 0.0}


def test_an_empty_cluster_counts_a_no_node_decision_without_rejections():
    state = ClusterState()
    scheduler = Scheduler()
    metrics = ManagerMetrics(state, scheduler.filter_names)
    scheduler.observer = metrics
    with pytest.raises(NoNodeAvailable):
        scheduler.place(state, spec_from_create({"Image": "busybox"}))
    samples = parse(metrics.registry.render())
    assert samples["flock_scheduler_decisions_total"][(("outcome", "no_node"),)] == 1.0
    assert set(samples["flock_scheduler_filter_rejections_total"].values()) == {0.0}
    assert set(samples["flock_nodes"].values()) == {0.0}


def test_a_decision_without_observer_is_the_same_decision():
    state = _state(_node("a"), _node("b"))
    spec = spec_from_create({"Image": "busybox"})
    import random

    plain, observed = Scheduler(rng=random.Random(1)), Scheduler(rng=random.Random(1))
    observed.observer = ManagerMetrics(state)
    assert ([plain.place(state, spec).node.id for _ in range(5)]
            == [observed.place(state, spec).node.id for _ in range(5)])


def test_api_and_agent_rpc_metrics_use_the_labels_given():
    metrics = ManagerMetrics(ClusterState())
    metrics.api_request("POST", "/containers/{id*}/start", "204", 0.01)
    metrics.api_request("BREW", "unmatched", "501", 0.001)
    metrics.agent_rpc("DockerCall", 0.002, True)
    metrics.agent_rpc("Heartbeat", 5.0, False)
    samples = parse(metrics.registry.render())
    assert samples["flock_api_requests_total"] == {
        (("code", "204"), ("endpoint", "/containers/{id*}/start"), ("method", "POST")): 1.0,
        (("code", "501"), ("endpoint", "unmatched"), ("method", "other")): 1.0}
    assert samples["flock_agent_rpc_duration_seconds_count"] == {
        (("method", "DockerCall"),): 1.0, (("method", "Heartbeat"),): 1.0}
    assert samples["flock_agent_rpc_errors_total"] == {(("method", "Heartbeat"),): 1.0}


# ------------------------------------------------------------------ routes as labels
@pytest.mark.parametrize("method, path, template", [
    ("POST", "/containers/create", "/containers/create"),
    ("POST", "/containers/3f2a9c1d/start", "/containers/{id*}/start"),
    ("GET", "/containers/web-1/json", "/containers/{id*}/json"),
    ("DELETE", "/containers/3f2a9c1d", "/containers/{id*}"),
    ("GET", "/no/such/thing", None),
])
def test_route_templates_carry_no_ids(method, path, template):
    assert build_router().template(method, path) == template


# ------------------------------------------------------------------ logs
def _record(message: str = "hello %s", args=("world",), exc=None) -> logging.LogRecord:
    return logging.LogRecord("flock.test", logging.WARNING, __file__, 1, message, args, exc)


def test_json_lines_carry_the_request_id_bound_at_the_time():
    stream = io.StringIO()
    logger = logging.getLogger("flock.test.json")
    logger.propagate = False
    handler = make_handler("json", stream)
    logger.addHandler(handler)
    try:
        logger.warning("outside")
        with bind_request_id("req-42"):
            assert current_request_id() == "req-42"
            logger.warning("inside %d", 1)
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                logger.exception("failed")
        assert current_request_id() == ""
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["message"], e["request_id"]) for e in lines] == [
        ("outside", None), ("inside 1", "req-42"), ("failed", "req-42")]
    assert set(lines[0]) == {"time", "level", "logger", "message", "request_id"}
    assert lines[0]["level"] == "WARNING" and lines[0]["logger"] == "flock.test.json"
    assert lines[0]["time"].endswith("Z")
    assert "RuntimeError: boom" in lines[2]["exc"]


def test_text_lines_end_with_the_request_id_inside_a_request():
    formatter, stamp = TextFormatter(), RequestIdFilter()
    outside = _record()
    stamp.filter(outside)
    assert formatter.format(outside).endswith("flock.test: hello world")
    with bind_request_id("abc"):
        inside = _record()
        stamp.filter(inside)
    assert formatter.format(inside).endswith("flock.test: hello world request_id=abc")
    assert json.loads(JsonFormatter().format(inside))["request_id"] == "abc"


def test_request_ids_from_clients_must_be_sane():
    assert sane_request_id("4bf92f3577b34da6a3ce929d0e0e4736") is not None
    assert sane_request_id("trace:abc-1.2/x+y=@z") is not None
    for bad in ("", None, "has space", "x" * 129, "new\nline", 'quo"te', "é", "-leading"):
        assert sane_request_id(bad) is None, bad
    first, second = new_request_id(), new_request_id()
    assert first != second and sane_request_id(first) == first


def test_request_ids_follow_tasks_and_do_not_leak_between_them():
    async def main() -> list[str]:
        async def one(value: str) -> str:
            with bind_request_id(value):
                await asyncio.sleep(0)
                inner = asyncio.create_task(asyncio.sleep(0, current_request_id()))
                return await inner

        return await asyncio.gather(one("a"), one("b"), asyncio.sleep(0, current_request_id()))

    assert asyncio.run(main()) == ["a", "b", ""]


def test_unknown_log_format_is_refused():
    with pytest.raises(ValueError, match="unknown log format 'xml': expected text or json"):
        make_handler("xml")
    proc = subprocess.run([sys.executable, "-m", "flock", "--log-format", "xml", "list", "x"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--log-format: invalid choice: 'xml'" in proc.stderr


# ------------------------------------------------------------------ agent side
def test_the_agent_counts_rpcs_by_status_and_logs_them_with_the_managers_request_id(
        tmp_path):
    """A real agent gRPC server whose runtime is not there: Info and Heartbeat fail with
    UNAVAILABLE. The manager's AgentClient sends the bound request ID, the agent's log
    line for the call carries it, and both sides count the failures."""
    from flock.agent.metrics import AgentMetrics
    from flock.agent.runtimes.docker import DockerRuntime
    from flock.agent.server import AgentService, make_server
    from flock.manager.cluster.agent_client import AgentClient, AgentUnavailable

    stream = io.StringIO()
    handler = make_handler("json", stream)
    agent_log = logging.getLogger("flock.agent.requests")
    agent_log.addHandler(handler)
    agent_log.setLevel(logging.DEBUG)
    agent_metrics, manager_metrics = AgentMetrics(), ManagerMetrics(ClusterState())

    async def main() -> None:
        runtime = DockerRuntime(f"unix://{tmp_path}/no-engine.sock")
        server, port = make_server(AgentService(runtime, "127.0.0.1:0"), "127.0.0.1:0",
                                   metrics=agent_metrics)
        await server.start()
        client = AgentClient(f"127.0.0.1:{port}", observer=manager_metrics.agent_rpc)
        try:
            with bind_request_id("from-the-manager"):
                with pytest.raises(AgentUnavailable):
                    await client.info()
            with pytest.raises(AgentUnavailable):
                await client.heartbeat()
        finally:
            await client.close()
            await server.stop(0)

    try:
        asyncio.run(main())
    finally:
        agent_log.removeHandler(handler)
        agent_log.setLevel(logging.NOTSET)
    agent = parse(agent_metrics.render())
    assert agent["flock_agent_rpcs_total"] == {
        (("code", "UNAVAILABLE"), ("method", "Info")): 1.0,
        (("code", "UNAVAILABLE"), ("method", "Heartbeat")): 1.0}
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["message"].split(" in ")[0], e["request_id"]) for e in lines] == [
        ("rpc Info UNAVAILABLE", "from-the-manager"), ("rpc Heartbeat UNAVAILABLE", None)]
    manager = parse(manager_metrics.registry.render())
    assert manager["flock_agent_rpc_errors_total"] == {(("method", "Info"),): 1.0,
                                                       (("method", "Heartbeat"),): 1.0}
