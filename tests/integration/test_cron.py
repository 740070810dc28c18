"""Cron jobs on one manager over two real Docker Engines (manager/cron/): runs on
schedule through the one create path, their history, forbid and replace, bad input
refused with nothing stored, events and metrics, and jobs (and the runs owed) kept in
the manager's state folder across a restart, without etcd."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time

import pytest

from flock.manager.app import Manager
from flock.manager.cron.jobs import (
    ImageMissing,
    InvalidSchedule,
    Job,
    JobExists,
    NoSuchJob,
    UnknownTimeZone,
    Unplaceable,
)
from flock.manager.cron.runs import rfc3339
from tests.support.cluster import Cluster, wait_for

pytestmark = pytest.mark.timeout(240)
NODES = ("node-a", "node-b")


@pytest.fixture(scope="module")
def cluster(engine_pair, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cron")
    with Cluster(engine_pair, folder, NODES,
                 manager_options={"state_dir": str(folder / "manager")}) as made:
        yield made


@pytest.fixture
def jobs(cluster):
    """Makes jobs; removes them and their containers afterwards."""
    made: list[str] = []

    def create(name: str, schedule: str, cmd: list[str], **options) -> Job:
        body = {"Image": "busybox", "Cmd": cmd, **options.pop("body", {})}
        job = Job(name=name, schedule=schedule, body=body, **options)
        created = call(cluster, cluster.manager.cron.create(job))
        made.append(name)
        return created

    yield create
    for name in made:
        try:
            call(cluster, cluster.manager.cron.remove(name))
        except NoSuchJob:
            pass
        remove_containers(cluster, name)


def call(cluster, coro, timeout: float = 60):
    return cluster.lt.run(coro, timeout)


def history(cluster, name: str):
    return call(cluster, cluster.manager.cron.history(name))


def labelled(cluster, job: str) -> list[dict]:
    """Every container of the job on the engines themselves: the runs that happened."""
    out = []
    for engine in cluster.engines:
        ids = engine.docker("ps", "-aq", "--no-trunc", "--filter",
                            f"label=flock.cron.job={job}").stdout.decode().split()
        if ids:
            out += json.loads(engine.docker("inspect", *ids).stdout)
    return out


def remove_containers(cluster, job: str) -> None:
    for engine in cluster.engines:
        ids = engine.docker("ps", "-aq", "--filter",
                            f"label=flock.cron.job={job}").stdout.decode().split()
        if ids:
            engine.docker("rm", "-f", *ids, check=False)


def test_every_second_runs_on_schedule_and_keeps_its_history(cluster, jobs):
    events = subprocess.Popen(["docker", "-H", cluster.url, "events", "--format",
                               "{{json .}}", "--filter", "type=cron"],
                              stdout=subprocess.PIPE, text=True)
    seen: list[dict] = []
    reader = threading.Thread(target=lambda: seen.extend(json.loads(line)
                                                         for line in events.stdout),
                              daemon=True)
    reader.start()
    try:
        time.sleep(1)  # the stream is open
        job = jobs("tick", "@every 1s", ["sh", "-c", "echo tick"], history=3)
        wait_for(lambda: sum(r.result == "succeeded" for r in history(cluster, "tick")) >= 3,
                 30, "three runs")
        assert cluster.manager.cron.timer.get_job("tick") is not None  # APScheduler fires it
        status = cluster.manager.cron.get("tick")
        assert status.next_run is not None and status.next_run > time.time() - 1
        wait_for(lambda: len([e for e in seen if e["Action"] == "succeeded"]) >= 4, 30,
                 "four succeeded events")
        # suspended, so that what follows looks at a history that stands still
        call(cluster, cluster.manager.cron.suspend("tick"))
        wait_for(lambda: not any(r.active for r in history(cluster, "tick")), 30,
                 "the last run's end")
    finally:
        events.terminate()
    runs = history(cluster, "tick")
    finished = [r for r in runs if not r.active]
    assert len(finished) == 3  # --history 3: older ones forgotten...
    assert all(r.result == "succeeded" and r.exit_code == 0 for r in finished)
    assert [r.scheduled for r in runs] == sorted((r.scheduled for r in runs), reverse=True)
    for run in finished:
        # on the schedule: whole seconds after the creation, named for the time
        assert run.scheduled == int(run.scheduled) and run.scheduled > job.created
        assert run.name == "tick-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(run.scheduled))
        assert run.node in NODES and run.started >= run.scheduled - 0.01
        assert run.finished >= run.started
    # ...with their containers: what the engines hold is what the history shows
    # (the oldest run's container is removed a moment after the newest run's end)
    wait_for(lambda: len(labelled(cluster, "tick")) <= 3, 15, "the forgotten runs' containers gone")
    kept = {c["Config"]["Labels"]["flock.cron.scheduled"] for c in labelled(cluster, "tick")}
    assert kept == {rfc3339(r.scheduled) for r in finished}
    start = next(e for e in seen if e["Action"] == "start")
    assert start["Type"] == "cron" and start["Actor"]["ID"] == "tick"
    assert set(start["Actor"]["Attributes"]) >= {"name", "scheduled", "node", "container",
                                                 "exitCode"}
    done = next(e for e in seen if e["Action"] == "succeeded")
    assert done["Actor"]["Attributes"]["exitCode"] == "0"
    _, metrics, _ = cluster.api("GET", "/metrics")
    assert 'flock_cron_runs_total{job="tick",result="succeeded"}' in metrics
    assert 'flock_cron_last_success_timestamp_seconds{job="tick"}' in metrics


def test_failed_runs_keep_their_exit_code(cluster, jobs):
    jobs("fails", "@every 1s", ["sh", "-c", "exit 3"], history=2)
    wait_for(lambda: any(r.result == "failed" for r in history(cluster, "fails")), 30,
             "a failed run")
    failed = next(r for r in history(cluster, "fails") if r.result == "failed")
    assert failed.exit_code == 3


def test_forbid_skips_while_the_previous_run_runs(cluster, jobs):
    jobs("slow", "@every 1s", ["sleep", "3"], concurrency="forbid", history=50)
    wait_for(lambda: sum(r.result == "succeeded" for r in history(cluster, "slow")) >= 2,
             40, "two finished runs")
    runs = history(cluster, "slow")
    skipped = [r for r in runs if r.result == "skipped"]
    assert skipped and all("still running" in r.reason and not r.container for r in skipped)
    ran = sorted((r for r in runs if r.started), key=lambda r: r.started)
    for earlier, later in zip(ran, ran[1:], strict=False):  # never two at once
        assert earlier.finished is not None and later.started >= earlier.finished - 0.5


def test_replace_stops_the_previous_run_first(cluster, jobs):
    jobs("long", "@every 2s", ["sleep", "60"], concurrency="replace", history=50)
    wait_for(lambda: sum(r.result == "replaced" and r.exit_code is not None
                         for r in history(cluster, "long")) >= 2, 40, "two replaced runs")
    runs = history(cluster, "long")
    replaced = [r for r in runs if r.result == "replaced"]
    assert all(r.reason.startswith("replaced by long-") for r in replaced)
    live = [c for c in labelled(cluster, "long") if c["State"]["Running"]]
    assert len(live) <= 2  # the newest, and at most one being stopped right now


def test_bad_jobs_are_refused_and_nothing_is_stored(cluster, jobs):
    jobs("taken", "@daily", ["true"])
    cron = cluster.manager.cron
    before = [s.job.name for s in cron.list()]
    cases = [
        (Job(name="x1", schedule="* * 61 * *", body={"Image": "busybox"}), InvalidSchedule,
         'invalid schedule "* * 61 * *": day of month: 61 is out of 1-31'),
        (Job(name="x2", schedule="@daily", time_zone="Mars/Base", body={"Image": "busybox"}),
         UnknownTimeZone, 'unknown time zone "Mars/Base"'),
        (Job(name="taken", schedule="@hourly", body={"Image": "busybox"}), JobExists,
         'a job named "taken" already exists'),
        (Job(name="x3", schedule="@daily", body={"Image": "busybox",
                                                  "Env": ["constraint:node==nowhere"]}),
         Unplaceable, "no node can ever run job x3"),
        (Job(name="x4", schedule="@daily", body={"Image": "busybox",
                                                  "HostConfig": {"Memory": 1 << 50}}),
         Unplaceable, "the largest node has"),
        (Job(name="x5", schedule="@daily", body={"Image": "nosuchimage:9"}), ImageMissing,
         'image "nosuchimage:9" is on no node'),
    ]
    for job, error, text in cases:
        with pytest.raises(error) as caught:
            call(cluster, cron.create(job))
        assert text in str(caught.value)
    assert [s.job.name for s in cron.list()] == before
    with open(cluster.manager.config.state_dir + "/cron.json") as file:
        stored = json.load(file)
    assert sorted(j["name"] for j in stored["jobs"]) == sorted(before)


def test_run_now_suspend_and_resume(cluster, jobs):
    jobs("manual", "@yearly", ["sh", "-c", "exit 0"], history=5)
    run = call(cluster, cluster.manager.cron.run_now("manual"))
    assert run.result == "running" and run.container and run.node in NODES
    wait_for(lambda: history(cluster, "manual")[0].result == "succeeded", 30, "the run ends")
    suspended = call(cluster, cluster.manager.cron.suspend("manual"))
    assert suspended.suspended and cluster.manager.cron.get("manual").next_run is None
    resumed = call(cluster, cluster.manager.cron.resume("manual"))
    assert not resumed.suspended and resumed.resumed > 0
    assert cluster.manager.cron.get("manual").next_run is not None
    with pytest.raises(NoSuchJob, match="no such job: nothere"):
        call(cluster, cluster.manager.cron.run_now("nothere"))


def test_removing_a_job_answers_once_its_starting_run_has_its_container(cluster, jobs):
    """`flock cron rm` while a run is being placed: the answer comes once that run's
    container exists (nothing of the job appears afterwards), and no record of the run
    outlives the job."""
    jobs("going", "@yearly", ["sleep", "30"])
    cron = cluster.manager.cron

    async def remove_while_starting():
        starting = asyncio.ensure_future(cron.run_now("going"))
        await asyncio.sleep(0)  # the run is claimed and being placed
        assert cron.runner.busy, "the run is not being started"
        await cron.remove("going")
        there = labelled(cluster, "going")
        run = await starting
        return there, run

    there, run = call(cluster, remove_while_starting())
    assert [c["Id"] for c in there] == [run.container]
    assert "going" not in cron.store.runs
    with pytest.raises(NoSuchJob):
        history(cluster, "going")


def test_jobs_and_owed_runs_survive_a_restart(cluster, jobs):
    """The file store: the job comes back, and the seconds it was down for are made up
    once each (inside --deadline); a job whose rule no node meets any more is refused
    at each run, with the reason."""
    jobs("steady", "@every 1s", ["true"], deadline=120.0, history=500)
    jobs("stuck", "@every 1s", ["true"], history=5)
    wait_for(lambda: len(history(cluster, "steady")) >= 2, 30, "runs before the restart")
    call(cluster, cluster.manager.stop())
    path = cluster.manager.config.state_dir + "/cron.json"
    stored = json.load(open(path))
    for job in stored["jobs"]:  # no node will ever be called "nowhere"
        if job["name"] == "stuck":
            job["body"]["Env"] = ["constraint:node==nowhere"]
    open(path, "w").write(json.dumps(stored))
    down = time.time()
    time.sleep(4)
    cluster.manager = Manager(cluster.manager.config)
    call(cluster, cluster.manager.start())
    wait_for(lambda: len(cluster.manager.state.healthy_nodes()) == 2, 30, "nodes")
    assert {"steady", "stuck"} <= {s.job.name for s in cluster.manager.cron.list()}
    wait_for(lambda: any(r.scheduled > down + 6 and r.result == "succeeded"
                         for r in history(cluster, "steady")), 40, "runs after the restart")
    last = max(r.scheduled for r in history(cluster, "steady") if r.result == "succeeded")
    wait_for(lambda: not any(r.active for r in history(cluster, "steady")
                             if r.scheduled <= last), 30, "the runs before it to end")
    runs = history(cluster, "steady")
    seconds = sorted(r.scheduled for r in runs)
    first = seconds[0]
    # every second from the first run on, the ones while it was down included, ran once
    assert seconds[: int(last - first) + 1] == [first + i for i in range(int(last - first) + 1)]
    assert all(r.result == "succeeded" for r in runs if r.scheduled <= last)
    stamps = [c["Config"]["Labels"]["flock.cron.scheduled"] for c in labelled(cluster, "steady")]
    assert len(stamps) == len(set(stamps))
    wait_for(lambda: any(r.result == "refused" for r in history(cluster, "stuck")), 30,
             "a refused run")
    refused = next(r for r in history(cluster, "stuck") if r.result == "refused")
    assert "node==nowhere" in refused.reason
