"""The pure parts of cron jobs and runs (manager/cron/jobs.py, runs.py, timing.py): the
checks of a job, run names and labels, catch-up after a gap, history, APScheduler
options, and the file store's atomic writes."""

from __future__ import annotations

import asyncio
import json

import pytest

from flock.manager.cron.jobs import InvalidJob, InvalidSchedule, Job, UnknownTimeZone, check_job
from flock.manager.cron.runs import (
    MANUAL,
    Run,
    beyond_history,
    catch_up_from,
    container_name,
    plan_catch_up,
    rfc3339,
    run_body,
    run_key,
    unfired,
    within_history,
)
from flock.manager.cron.store import FileStore
from flock.manager.cron.timing import MANY, job_options

BODY = {"Image": "busybox", "Cmd": ["true"]}


def job(**changes) -> Job:
    return Job(**{"name": "backup", "schedule": "@daily", "body": BODY, **changes})


def test_a_good_job_passes_and_round_trips_through_json():
    good = job(deadline=300.0, concurrency="forbid", history=3, created=1.0)
    check_job(good)
    assert Job.from_dict(json.loads(json.dumps(good.to_dict()))) == good
    assert Job.from_dict({**good.to_dict(), "from_a_newer_manager": 1}) == good


@pytest.mark.parametrize("changes, error, text", [
    ({"name": "-x"}, InvalidJob, 'invalid job name "-x"'),
    ({"name": "a/b"}, InvalidJob, 'invalid job name "a/b"'),
    ({"concurrency": "sometimes"}, InvalidJob, 'invalid concurrency "sometimes"'),
    ({"history": 0}, InvalidJob, "invalid history 0"),
    ({"deadline": 0}, InvalidJob, "invalid deadline 0"),
    ({"body": {"Cmd": ["true"]}}, InvalidJob, "a job needs an image"),
    ({"schedule": "* * 61 * *"}, InvalidSchedule, "day of month: 61 is out of 1-31"),
    ({"time_zone": "Nowhere/Land"}, UnknownTimeZone, 'unknown time zone "Nowhere/Land"'),
])
def test_bad_jobs(changes, error, text):
    with pytest.raises(error, match=text):
        check_job(job(**changes))


def test_run_names_labels_and_keys():
    scheduled = 1796562900.0  # 2026-12-06T13:15:00Z
    assert container_name("backup", scheduled) == "backup-20261206T131500Z"
    assert container_name("backup", scheduled + 0.25) == "backup-20261206T131500250Z"
    assert rfc3339(scheduled) == "2026-12-06T13:15:00Z"
    body = run_body({**BODY, "Labels": {"team": "ops"}}, "backup", scheduled)
    assert body["Labels"] == {"team": "ops", "flock.cron.job": "backup",
                              "flock.cron.scheduled": "2026-12-06T13:15:00Z"}
    assert "Labels" not in BODY  # the job's own body is left alone
    assert run_key(scheduled) < run_key(scheduled + 1) < run_key(scheduled + 100000)


def test_catch_up_with_a_deadline_runs_each_time_inside_it_once():
    times = [100.0, 110.0, 120.0, 130.0]
    assert plan_catch_up(times, now=135.0, deadline=20.0) == ([120.0, 130.0], [100.0, 110.0])


def test_catch_up_without_a_deadline_collapses_into_the_newest():
    assert plan_catch_up([100.0, 110.0, 120.0], now=500.0, deadline=None) == (
        [120.0], [100.0, 110.0])
    assert plan_catch_up([], now=500.0, deadline=None) == ([], [])


def test_history_keeps_the_newest_finished_runs_and_every_active_one():
    runs = [Run("j", float(t), result="succeeded") for t in range(5)]
    runs.append(Run("j", 9.0, result="running"))
    assert [r.scheduled for r in beyond_history(runs, 2)] == [2.0, 1.0, 0.0]
    # what `flock cron history` shows while those are being forgotten
    assert [r.scheduled for r in within_history(runs, 2)] == [9.0, 4.0, 3.0]
    assert [r.scheduled for r in within_history(runs[:1], 2)] == [0.0]


def test_apscheduler_options_from_concurrency_and_deadline():
    assert job_options(job(concurrency="forbid", deadline=2.5)) == {
        "max_instances": 1, "misfire_grace_time": 3, "coalesce": False}
    assert job_options(job(concurrency="replace")) == {
        "max_instances": MANY, "misfire_grace_time": None, "coalesce": True}


def test_file_store_claims_once_and_survives_a_restart(tmp_path):
    path = tmp_path / "state" / "cron.json"

    async def scenario() -> None:
        store = FileStore(path)
        await store.start()
        assert await store.add_job(job(created=5.0))
        assert not await store.add_job(job(created=6.0))
        run = Run("backup", 60.0, name="backup-x")
        assert await store.claim(run)
        assert not await store.claim(Run("backup", 60.0, owner="someone else"))
        running = Run("backup", 60.0, name="backup-x", result="running", owner="m2")
        assert await store.take_over(run, running)
        assert not await store.take_over(run, Run("backup", 60.0, owner="m3"))

        again = FileStore(path)
        await again.start()
        assert again.jobs == {"backup": job(created=5.0)}
        assert again.job_runs("backup") == [running]
        await again.delete_job("backup")
        third = FileStore(path)
        await third.start()
        assert third.jobs == {} and third.runs == {}

    asyncio.run(scenario())
    assert [p.name for p in path.parent.iterdir()] == ["cron.json"]  # no temporary left


def test_owed_times_are_every_unclaimed_one_not_only_those_after_the_newest():
    """A primary that woke up late fired 21 while 19 and 20 were still owed."""
    runs = [Run("j", float(t), result="succeeded") for t in (15, 16, 17, 18, 21)]
    since = catch_up_from(runs, watermark=10.0, history=100)
    assert since == 10.0
    assert unfired([float(t) for t in range(11, 23)], runs, since) == [
        11.0, 12.0, 13.0, 14.0, 19.0, 20.0, 22.0]


def test_owed_times_start_at_the_oldest_record_once_history_is_full():
    runs = [Run("j", float(t), result="succeeded") for t in (15, 16, 18)]
    assert catch_up_from(runs, watermark=10.0, history=3) == 15.0
    manual = Run("j", 12.5, result="succeeded", reason=MANUAL)
    assert catch_up_from([*runs, manual], watermark=10.0, history=3) == 15.0
    assert unfired([16.0, 17.0, 18.0, 19.0], runs, 15.0) == [17.0, 19.0]
