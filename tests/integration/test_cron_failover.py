"""Cron jobs through failover, with a real etcd, real exec agents and three replicated
managers as processes: the primary is killed (SIGKILL) again and again for a minute,
between runs and in the middle of them, and afterwards the containers' own labels show
every scheduled second ran exactly once. Jobs live in etcd, so they are written there
as any manager would (`<prefix>/_cron/jobs/NAME`) and every manager sees them."""

from __future__ import annotations

import json
import random
import signal
import time
import urllib.parse

import pytest

from flock.manager.cron.jobs import Job
from flock.manager.cron.runs import rfc3339
from tests.support.etcd import Etcd, have_etcd
from tests.support.procs import Manager, wait_for
from tests.support.replicated import ha_cluster, primary, replicated

pytestmark = [pytest.mark.skipif(not have_etcd(), reason="etcd is not installed")]

TTL = 2.0
TTL_FLAG = f"{TTL:g}s"
PREFIX = "/cronha"


def put_job(etcd: Etcd, job: Job) -> None:
    etcd.put(f"{PREFIX}/_cron/jobs/{job.name}", json.dumps(job.to_dict()))


def runs_in_etcd(etcd: Etcd, name: str) -> list[dict]:
    return [json.loads(v) for v in etcd.keys(f"{PREFIX}/_cron/runs/{name}/").values()]


def containers(manager: Manager, job: str) -> list[dict]:
    query = urllib.parse.quote(json.dumps({"label": [f"flock.cron.job={job}"]}))
    status, found = manager.api("GET", f"/containers/json?all=1&filters={query}")
    assert status == 200, found
    return found


@pytest.fixture
def ha(tmp_path):
    with ha_cluster(tmp_path, PREFIX, TTL_FLAG) as (etcd, url, managers):
        wait_for(lambda: primary(managers), 15, "a primary")
        managers[0].import_busybox()
        yield etcd, managers, tmp_path, url


def test_only_the_primary_fires_and_a_job_runs_once_per_time(ha):
    etcd, managers, _, _ = ha
    put_job(etcd, Job(name="ping", schedule="@every 1s", body={"Image": "busybox",
                                                              "Cmd": ["true"]},
                      history=100, created=float(int(time.time()))))
    wait_for(lambda: len(containers(managers[0], "ping")) >= 4, 30, "four runs")
    leader = primary(managers)
    runs = runs_in_etcd(etcd, "ping")
    assert {r["owner"] for r in runs} == {leader.addr}
    stamps = [c["Labels"]["flock.cron.scheduled"] for c in containers(managers[1], "ping")]
    assert len(stamps) == len(set(stamps))


def test_jobs_survive_a_full_restart_and_the_gap_collapses_into_one_run(ha):
    """Every manager stopped, new ones started: the job is still there (etcd), and the
    seconds nobody fired (no --deadline: coalesced) became one run, the rest missed."""
    etcd, managers, folder, url = ha
    put_job(etcd, Job(name="tock", schedule="@every 1s", history=100,
                      body={"Image": "busybox", "Cmd": ["true"]},
                      created=float(int(time.time()))))
    wait_for(lambda: len(containers(managers[0], "tock")) >= 2, 30, "runs before")
    for manager in managers:
        manager.stop()
    down = time.time()
    time.sleep(4)
    managers[:] = [replicated(f"r{i}", folder, url, TTL_FLAG).start() for i in (1, 2, 3)]
    wait_for(lambda: primary(managers), 30, "a primary after the restart")
    up = time.time()
    wait_for(lambda: any(r["scheduled"] > up + 1 and r["result"] == "succeeded"
                         for r in runs_in_etcd(etcd, "tock")), 30, "runs after the restart")
    runs = sorted(runs_in_etcd(etcd, "tock"), key=lambda r: r["scheduled"])
    gap = [r for r in runs if down + 1 < r["scheduled"] < up - 1]
    assert gap and [r["result"] for r in gap].count("succeeded") <= 1
    assert all(r["result"] == "missed" for r in gap[:-1])
    seconds = [r["scheduled"] for r in runs]
    assert seconds == [seconds[0] + i for i in range(len(seconds))]  # none lost, none twice
    stamps = [c["Labels"]["flock.cron.scheduled"] for c in containers(managers[0], "tock")]
    assert len(stamps) == len(set(stamps))


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_minute_of_killed_primaries_runs_each_time_once(ha):
    etcd, managers, folder, url = ha
    created = float(int(time.time()))
    # runs of 2s every second: whenever the primary dies, runs are in the middle
    put_job(etcd, Job(name="beat", schedule="@every 1s", deadline=60.0, history=1000,
                      body={"Image": "busybox", "Cmd": ["sleep", "2"]}, created=created))
    wait_for(lambda: len(containers(managers[0], "beat")) >= 3, 30, "the first runs")
    rng = random.Random(17)
    kills, freezes, generation = 0, 0, 4
    end = time.monotonic() + 60
    while time.monotonic() < end:
        leader = wait_for(lambda: primary(managers), TTL * 4 + 10, "a primary")
        time.sleep(rng.uniform(0.0, 2.0))  # between runs, or in the middle of one
        if (kills + freezes) % 3 == 2:
            # Split brain: frozen past its lease, it wakes up still sure it is the
            # primary, with every second it slept due at once, which the new primary
            # has run meanwhile: only the claims keep those from running twice.
            freezes += 1
            leader.proc.send_signal(signal.SIGSTOP)
            others = [m for m in managers if m is not leader]
            wait_for(lambda others=others: primary(others), TTL * 4 + 10,
                     "a primary beside the frozen one")
            time.sleep(1.5)
            leader.proc.send_signal(signal.SIGCONT)
            continue
        leader.kill9()
        kills += 1
        managers.remove(leader)
        fresh = replicated(f"m{generation}", folder, url, TTL_FLAG).start()
        generation += 1
        managers.append(fresh)
        wait_for(lambda m=fresh: list(m.nodes().values()) == ["Healthy"] * 2, 30,
                 f"{fresh.name} to see the nodes")
    stopped = time.time()
    leader = wait_for(lambda: primary(managers), TTL * 4 + 10, "a last primary")

    def all_ended() -> bool:
        runs = runs_in_etcd(etcd, "beat")
        done = [r for r in runs if r["scheduled"] <= stopped]
        return bool(done) and all(r["result"] not in ("claimed", "running") for r in done)

    wait_for(all_ended, 60, "every run up to the last kill to end")
    expected = [created + i for i in range(1, int(stopped - created) + 1)]
    stamps = [c["Labels"]["flock.cron.scheduled"] for c in containers(leader, "beat")]
    # no scheduled time ran twice...
    assert len(stamps) == len(set(stamps)), sorted(s for s in stamps if stamps.count(s) > 1)
    # ...and none inside the deadline (every gap was) was lost
    missing = [rfc3339(t) for t in expected if rfc3339(t) not in set(stamps)]
    assert kills >= 4 and freezes >= 2 and not missing, (kills, freezes, missing)
    runs = {r["scheduled"]: r for r in runs_in_etcd(etcd, "beat")}
    assert all(runs[t]["result"] == "succeeded" for t in expected), [
        (rfc3339(t), runs[t]["result"], runs[t]["reason"]) for t in expected
        if runs[t]["result"] != "succeeded"]
    print(f"{kills} primaries killed, {freezes} frozen; {len(expected)} scheduled seconds, "
          "each run once")
