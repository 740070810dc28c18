"""The cluster page (/ui) in headless Chromium against a real cluster: two real dockerd,
two agents (docker runtime) and the Manager in-process. The page must list the nodes,
show a container started through the Docker SDK in its node's box within a couple of
seconds with its --cpus/-m reservation in the bars, make a non-blank screenshot, and
work with zero nodes over TLS, picking up a node that joins later."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
import urllib.request
import uuid

import docker
import pytest

from flock.agent.cli import run_agent
from flock.certs import issue, make_ca, write_identity
from flock.manager.app import Manager, ManagerConfig
from tests.conftest import free_port
from tests.support import browser as chromium
from tests.support.cluster import LoopThread, agent_args, wait_for

pytestmark = pytest.mark.docker

MIB = 1 << 20
# The page as the DOM has it: one entry per node box, read in one round trip.
READ_NODES = """
return Array.from(document.querySelectorAll("section.node")).map(function (box) {
  function meter(kind) {
    var m = box.querySelector(".meter." + kind);
    return {reserved: Number(m.dataset.reserved), total: Number(m.dataset.total),
            text: m.querySelector(".value").textContent};
  }
  return {
    name: box.dataset.node, health: box.dataset.health, cpu: meter("cpu"),
    memory: meter("memory"),
    containers: Array.from(box.querySelectorAll("li.container")).map(function (li) {
      return {name: li.dataset.name, state: li.dataset.state,
              image: li.querySelector(".container-image").textContent};
    })
  };
});
"""


CLUSTER = dict(names=("ui-a", "ui-b"))  # the shared `cluster` (tests/integration/conftest.py)


@pytest.fixture
def page(cluster, browser):
    """The cluster page open on `cluster`'s manager, both nodes drawn."""
    driver = browser.driver
    driver.get(f"http://127.0.0.1:{cluster.port}/ui")
    wait_for(lambda: len(driver.execute_script(READ_NODES)) == 2, 15, "the two node boxes")
    return driver


def nodes_on(driver) -> dict[str, dict]:
    return {node["name"]: node for node in driver.execute_script(READ_NODES)}


def test_page_lists_the_nodes_with_their_totals(cluster, page):
    nodes = nodes_on(page)
    assert sorted(nodes) == ["ui-a", "ui-b"]
    for node in cluster.manager.state.nodes():
        drawn = nodes[node.name]
        assert drawn["health"] == "healthy"
        assert drawn["cpu"]["total"] == node.cpus > 0
        assert drawn["memory"]["total"] == node.memory > 0
        assert drawn["cpu"]["text"].endswith(f" / {node.cpus}")
    assert page.current_url.endswith("/ui/")  # /ui redirects so relative URLs resolve
    summary = page.find_element("id", "summary").text
    assert summary.startswith("2 nodes, ") and "strategy spread" in summary
    assert not page.find_element("id", "empty").is_displayed()
    assert page.find_element("id", "link").text == "live"


def test_sdk_run_shows_up_live_with_its_reservation(cluster, page, tmp_path):
    name = f"ui-{uuid.uuid4().hex[:6]}"
    before = nodes_on(page)
    client = docker.DockerClient(base_url=cluster.url, version="1.41", timeout=60)
    try:
        client.containers.run("busybox", ["sleep", "300"], name=name, detach=True,
                              mem_limit="64m", nano_cpus=500_000_000)
        started = time.monotonic()
        where = cluster.node_of(name)

        def shown():
            node = nodes_on(page)[where]
            return any(c["name"] == name and c["state"] == "running"
                       for c in node["containers"]) and node
        node = wait_for(shown, 10, f"{name} running in {where}'s box")
        latency = time.monotonic() - started
        print(f"{name} on the page {latency:.2f}s after run() returned")
        assert latency < 2.0, f"the page showed the container after {latency:.2f}s"
        item = page.find_element("css selector", f'li.container[data-name="{name}"]')
        assert item.is_displayed() and "busybox" in item.text and "running" in item.text
        assert node["cpu"]["reserved"] == pytest.approx(before[where]["cpu"]["reserved"] + 0.5)
        assert node["memory"]["reserved"] == before[where]["memory"]["reserved"] + 64 * MIB
        if before[where]["memory"]["reserved"] == 0:
            assert node["memory"]["text"].startswith("64 MiB / ")
            assert node["cpu"]["text"] == f"0.5 / {node['cpu']['total']}"
        other = next(n for n in nodes_on(page) if n != where)
        assert name not in [c["name"] for c in nodes_on(page)[other]["containers"]]

        shot = tmp_path / "cluster.png"
        shot.write_bytes(page.get_screenshot_as_png())
        size, colours = chromium.png_colours(shot.read_bytes())
        assert list(size) == page.execute_script("return [innerWidth, innerHeight]")
        assert len(colours) > 16, f"screenshot {shot} has {len(colours)} colours"
        # The palette's solid fills: green health stripes/badges, the blue CPU bar that
        # the reservation filled, the running badge's background.
        for hex_colour in ("#16a34a", "#2563eb", "#dcfce7"):
            assert _rgb(hex_colour) in colours, f"{hex_colour} missing from {shot}"
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            client.containers.get(name).remove(force=True)
        client.close()
    wait_for(lambda: name not in {c["name"] for n in nodes_on(page).values()
                                  for c in n["containers"]}, 10, f"{name} gone from the page")


def test_snapshot_endpoint_and_bad_paths(cluster):
    before = _ui_counts(cluster)
    status, body, head = cluster.api("GET", "/ui/api/cluster")
    assert status == 200 and head["Content-Type"].startswith("application/json")
    assert [n["name"] for n in body["nodes"]] == ["ui-a", "ui-b"]
    assert body["strategy"] == "spread" and body["manager"] == cluster.manager.name
    status, text, _ = cluster.api("GET", "/ui/no-such-page")
    assert status == 404 and "no such page: /ui/no-such-page" in text and "/ui/" in text
    status, text, head = cluster.api("POST", "/ui/api/cluster", body=b"{}")
    assert status == 405 and "read-only" in text and head["Allow"] == "GET, HEAD"
    status, _, _ = cluster.api("GET", "/ui/static/../../app.py")
    assert status == 404
    status, body, _ = cluster.api("GET", "/_ping")  # the Docker API is still behind it
    assert (status, body) == (200, "OK")
    # The page's requests are counted by its route patterns, never as "unmatched"
    # and never by the path asked for (a label per path would grow without bound).
    after = _ui_counts(cluster)
    grew = {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
    # /ui/{tail}: the page that does not exist, the POST, the path out of /ui/static
    assert grew == {"/ui/api/cluster": 1, "/ui/{tail}": 3, "/_ping": 1, "/metrics": 1}
    assert not any("no-such-page" in endpoint or ".." in endpoint for endpoint in after)


def _ui_counts(cluster) -> dict[str, float]:
    """flock_api_requests_total by endpoint, summed over methods and codes."""
    status, text, _ = cluster.api("GET", "/metrics")
    assert status == 200
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("flock_api_requests_total{"):
            endpoint = line.split('endpoint="', 1)[1].split('"', 1)[0]
            counts[endpoint] = counts.get(endpoint, 0) + float(line.rsplit(" ", 1)[1])
    return counts


# ------------------------------------------------------------ no nodes, TLS
@pytest.fixture
def tls_manager(tmp_path):
    """A manager with --tls and file:// discovery of no node at all."""
    ca = make_ca("UI test CA")
    files = write_identity(tmp_path / "tls", issue(ca, "manager", ips=["127.0.0.1"],
                                                    dns=["localhost"], server=True), ca.cert)
    nodes_file = tmp_path / "nodes"
    nodes_file.write_text("")
    port = free_port()
    lt = LoopThread()
    manager = Manager(ManagerConfig(
        discovery=f"file://{nodes_file}", hosts=[f"tcp://127.0.0.1:{port}"], heartbeat=1.0,
        failure_retry=1, tls=True, tls_files=files))
    try:
        lt.run(manager.start())
    except BaseException:
        lt.close()
        raise
    stopped: list[bool] = []
    yield lt, manager, port, nodes_file, files, stopped
    if not stopped:
        with contextlib.suppress(Exception):
            lt.run(manager.stop())
    lt.close()


def test_zero_nodes_over_tls_then_a_node_joins(tls_manager, browser, engine_pair, tmp_path):
    lt, manager, port, nodes_file, files, stopped = tls_manager
    driver = browser.driver
    driver.get(f"https://127.0.0.1:{port}/ui")
    empty = wait_for(lambda: _shown(driver, "empty"), 15, "the empty message")
    assert empty.text.startswith("No nodes yet")
    assert driver.execute_script(READ_NODES) == []
    assert driver.find_element("id", "summary").text.startswith("0 nodes, 0 containers")
    with pytest.raises(OSError):  # TLS only: no plaintext on that port
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ui/api/cluster", timeout=10)
    context = ssl.create_default_context(cafile=files.ca)
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/ui/api/cluster", context=context,
                                timeout=10) as answer:
        assert json.load(answer)["nodes"] == []

    addr = f"127.0.0.1:{free_port()}"
    stop = lt.run(_event())
    agent = lt.spawn(run_agent(agent_args(engine_pair[0], addr, "ui-late",
                                          str(tmp_path / "agent")), stop))
    try:
        nodes_file.write_text(addr + "\n")
        drawn = wait_for(lambda: driver.execute_script(READ_NODES), 20, "the late node's box")
        assert [n["name"] for n in drawn] == ["ui-late"]
        wait_for(lambda: driver.execute_script(READ_NODES)[0]["health"] == "healthy", 20,
                 "the late node healthy")
        assert not driver.find_element("id", "empty").is_displayed()
        # The open stream does not hold the manager's stop up, and the page says it lost it.
        began = time.monotonic()
        stopped.append(True)
        lt.run(manager.stop())
        assert time.monotonic() - began < 5
        link = wait_for(lambda: _text_is(driver, "link", "reconnecting…"), 10,
                        "the page to say it lost the manager")
        assert "lost" in link.get_attribute("class")
    finally:
        lt.loop.call_soon_threadsafe(stop.set)
        with contextlib.suppress(Exception):
            agent.result(15)


def _shown(driver, element_id: str):
    element = driver.find_element("id", element_id)
    return element if element.is_displayed() else None


def _text_is(driver, element_id: str, text: str):
    element = driver.find_element("id", element_id)
    return element if element.text == text else None


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


async def _event() -> asyncio.Event:
    return asyncio.Event()
