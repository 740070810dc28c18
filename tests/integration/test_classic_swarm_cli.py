"""classic Swarm 1.2.9's command lines and node states against real agents in front of
real Docker Engines: a classic `manage` command line starts a Flock manager unchanged,
nodes go Pending -> Healthy -> Disconnected -> Unhealthy by classic's rules, and the
`ps` refresh flags re-read the nodes.

References (docker-archive/classicswarm): cli/flags.go and cli/commands.go (the flags and
their SWARM_* variables), cli/manage.go (their checks), cluster/engine.go (stateText:
Pending, Unhealthy, Healthy, Disconnected; incFailureCount; Disconnect), cluster/swarm/
cluster.go (Info's `└ Error` / `└ UpdatedAt` rows, pendingEngines), api/handlers.go
(getContainersJSON's ShouldRefreshOnNodeFilter and ContainerNameRefreshFilter).
"""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from tests.support.cluster import Cluster
from tests.support.procs import REPO, Agent, Manager, Proc, free_port, wait_for


@pytest.fixture
def procs():
    started: list[Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


def docker_agent(name: str, tmp_path, engine) -> Agent:
    """`flock join` in front of a real engine, registered nowhere (the manager's
    discovery lists it)."""
    return Agent(name, tmp_path, "", extra=["--runtime", "docker", "--docker-host",
                                             engine.url])


def node_rows(manager: Manager) -> dict[str, dict[str, str]]:
    """Node name -> its `└ ...` rows, from `docker info`'s SystemStatus."""
    nodes: dict[str, dict[str, str]] = {}
    current = None
    for key, value in manager.info().get("SystemStatus") or []:
        if key.startswith(" ") and not key.startswith("  "):
            current = nodes.setdefault(key.strip(), {"Addr": value})
        elif key.startswith("  └ ") and current is not None:
            current[key.strip()[2:]] = value
    return nodes


def status_of(manager: Manager, name: str) -> str:
    return node_rows(manager).get(name, {}).get("Status", "")


def test_a_classic_manage_command_line_starts_a_manager(engine, tmp_path, procs):
    """Every flag of classic's `manage`, its values from SWARM_* variables as classic
    reads them: the manager starts (--engine-refresh-min/max-interval stopped it before)
    and honours them."""
    agent = docker_agent("n1", tmp_path, engine)
    procs.append(agent.start())
    port = free_port()
    manager = Manager("manager", tmp_path, "")  # for its helpers; started as below
    manager.port = port
    manager.args = [
        "manage", "--filter", "health", "-f", "constraint", "--replication-ttl", "20s",
        "--engine-refresh-min-interval", "500ms", "--engine-refresh-max-interval", "1s",
        "--engine-failure-retry", "3", "--engine-refresh-retry", "3", "--heartbeat", "1s",
        "--api-enable-cors", "--cluster-driver", "swarm", "--cluster-opt",
        "swarm.overcommit=0.05", "--refresh-on-node-filter",
        "--container-name-refresh-filter", "probe"]
    manager.env = {"SWARM_HOST": f"tcp://127.0.0.1:{port}", "SWARM_STRATEGY": "binpack",
                   "SWARM_DISCOVERY": f"nodes://{agent.addr}"}
    procs.append(manager.start())
    wait_for(lambda: status_of(manager, "n1") == "Healthy", 30, "n1 healthy")
    assert manager.alive, manager.output()
    rows = dict(manager.info()["SystemStatus"])
    assert (rows["Strategy"], rows["Filters"]) == ("binpack", "health, constraint")
    # --cors: classic's headers (api/primary.go NewPrimary, enableCors)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_ping", timeout=10) as answer:
        assert answer.headers["Access-Control-Allow-Origin"] == "*"
        assert answer.headers["Access-Control-Allow-Methods"] == (
            "GET, POST, DELETE, PUT, OPTIONS")


def test_a_refused_classic_flag_stops_the_manager_with_classic_words(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "flock", "manage", "--engine-refresh-retry", "5",
         "nodes://127.0.0.1:1"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "--engine-refresh-retry is deprecated. Use --engine-failure-retry" in run.stderr


def test_node_states_follow_classic(engine, tmp_path, procs):
    """Pending until first reached, however often that fails; Healthy; Disconnected when
    gone from discovery but answering (and no longer a candidate); Unhealthy after
    --engine-failure-retry failed refreshes."""
    agent = docker_agent("n1", tmp_path, engine)
    listing = tmp_path / "cluster"
    listing.write_text(agent.addr + "\n")
    manager = Manager("manager", tmp_path, f"file://{listing}", extra=[
        "--heartbeat", "2s", "--engine-failure-retry", "2",
        "--engine-refresh-min-interval", "300ms", "--engine-refresh-max-interval", "600ms"])
    procs.append(manager.start())

    # Never reached: Pending with the error, its UpdatedAt moving with each attempt, for
    # more attempts than --engine-failure-retry (classic: pendingEngines, stateText).
    seen: set[str] = set()

    def pending_attempts():
        rows = node_rows(manager).get(agent.addr)
        if rows:
            assert rows["Status"] == "Pending", rows
            assert rows.get("Error"), rows
            seen.add(rows["UpdatedAt"])
        return len(seen) >= 3

    wait_for(pending_attempts, 30, "three failed attempts on a node never reached")

    procs.append(agent.start())
    wait_for(lambda: status_of(manager, "n1") == "Healthy", 30, "n1 healthy")
    rows = node_rows(manager)["n1"]
    assert "Error" not in rows and rows["UpdatedAt"].endswith("Z")

    listing.write_text("")  # gone from discovery, still answering
    wait_for(lambda: status_of(manager, "n1") == "Disconnected", 30, "n1 disconnected")
    run = subprocess.run(["docker", "-H", f"tcp://{manager.addr}", "run", "--rm", "-e",
                          "constraint:node==n1", "busybox", "true"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0, run.stdout
    listing.write_text(agent.addr + "\n")
    wait_for(lambda: status_of(manager, "n1") == "Healthy", 30, "n1 back")

    agent.stop()
    wait_for(lambda: status_of(manager, "n1") == "Unhealthy", 30, "n1 unhealthy")
    assert node_rows(manager)["n1"].get("Error")


def test_ps_refresh_flags_re_read_the_nodes(engine, tmp_path):
    """A record the manager lost (as if an event were missed) is read again by a
    `docker ps --filter node=...` with --refresh-on-node-filter, and by a name filter
    equal to --container-name-refresh-filter; a plain `docker ps` does not."""
    cluster = Cluster([engine], tmp_path, ["n1"], manager_options={
        "refresh_on_node_filter": True, "container_name_refresh_filter": "probe"})
    try:
        cid = cluster.docker("run", "-d", "--name", "probe", "busybox", "sleep", "60"
                             ).stdout.decode().strip()
        state = cluster.manager.state
        # The start's read-back (the engine's "Up ..." text) comes on the event stream
        # after the answer; lost before it lands, the record would simply come back.
        wait_for(lambda: (state.container(cid) is not None and str(
            state.container(cid).summary.get("Status", "")).startswith("Up")), 15,
            "the record as read after the start")

        async def lose() -> None:
            state.remove_container(cid)

        def names(*args: str) -> list[str]:
            return cluster.docker("ps", "-a", "--format", "{{.Names}}", *args
                                  ).stdout.decode().split()

        cluster.lt.run(lose())
        assert "n1/probe" not in names()
        assert "n1/probe" in names("--filter", "node=n1")
        cluster.lt.run(lose())
        assert "n1/probe" not in names("--filter", "name=other")
        assert "n1/probe" in names("--filter", "name=probe")
    finally:
        engine.docker("rm", "-f", "probe", check=False)
        cluster.close()


def test_classic_join_and_list_with_kv_path_in_a_real_etcd(engine, tmp_path, procs):
    """`join --addr` from $SWARM_ADVERTISE with `--discovery-opt kv.path=...` and
    `--delay`, then `list --timeout ... --discovery-opt` and `manage` with the same
    option: all three meet under <prefix>/<kv.path>, as libkv joins them."""
    from tests.support.etcd import Etcd, have_etcd

    if not have_etcd():
        pytest.fail("etcd is not installed: run the README's test command")
    etcd = Etcd(tmp_path / "etcd").start()
    try:
        url, opt = etcd.url("/swarm"), ["--discovery-opt", "kv.path=docker/nodes"]
        agent = Agent("n1", tmp_path, "", extra=[
            "--runtime", "docker", "--docker-host", engine.url, "--delay", "1s", *opt],
            env={"SWARM_DISCOVERY": url})
        agent.args.remove("--advertise")
        agent.args.remove(agent.addr)
        agent.env["SWARM_ADVERTISE"] = agent.addr
        procs.append(agent.start())
        wait_for(lambda: set(etcd.keys("/swarm/")) == {f"/swarm/docker/nodes/{agent.addr}"},
                 30, "the registration under kv.path")
        listed = subprocess.run(
            [sys.executable, "-m", "flock", "list", "--timeout", "5s", *opt, url],
            cwd=REPO, capture_output=True, text=True, timeout=60)
        assert listed.stdout.split() == [agent.addr], listed.stderr
        manager = Manager("manager", tmp_path, url, extra=opt)
        procs.append(manager.start())
        wait_for(lambda: status_of(manager, "n1") == "Healthy", 30, "n1 healthy")
    finally:
        for proc in reversed(procs):
            proc.stop()
        procs.clear()
        etcd.stop()
