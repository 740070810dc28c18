"""APScheduler, set up for cron jobs: an AsyncIOScheduler in the manager's loop whose
executor hands each job function the scheduled times it fires for.

APScheduler 3 calls a job function without saying which scheduled time it is for, and
a run's identity (its claim, container name and labels) is that time; so the executor
here passes the times on, and applies the misfire grace itself (late times go to
`missed` instead of being run). How a job's rules map onto APScheduler's:

- --concurrency forbid: max_instances=1 (a fire while the previous run is still going
  is refused by APScheduler, EVENT_JOB_MAX_INSTANCES, and recorded "skipped"); allow
  and replace: max_instances=MANY (replace stops the previous run itself);
- --deadline D: misfire_grace_time=D (whole seconds, at least 1) and coalesce=False,
  each late time inside D runs once; no --deadline: misfire_grace_time=None (no limit)
  and coalesce=True, late times collapse into one run.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Awaitable, Callable

from apscheduler.events import EVENT_JOB_MAX_INSTANCES
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from flock.manager.cron.jobs import Job

MANY = 10_000  # max_instances standing for "no limit"
Missed = Callable[[str, float, float], Awaitable[None]]  # (job name, scheduled, grace)


def job_options(job: Job) -> dict:
    """APScheduler's add_job options for `job`'s concurrency and deadline."""
    grace = None if job.deadline is None else max(1, math.ceil(job.deadline))
    return {"max_instances": 1 if job.concurrency == "forbid" else MANY,
            "misfire_grace_time": grace, "coalesce": job.deadline is None}


class TimedExecutor(AsyncIOExecutor):
    """Runs the job's function with `scheduled=` each time (its `scheduled` keyword
    argument, given as a placeholder at add_job, is replaced), or `missed(job id,
    scheduled, grace)` for a time past its misfire grace, as tasks of the loop."""

    def __init__(self, missed: Missed) -> None:
        super().__init__()
        self.missed = missed

    def _do_submit_job(self, job, run_times) -> None:
        async def work() -> list:
            for when in run_times:
                scheduled = when.timestamp()
                grace = job.misfire_grace_time
                if grace is not None and time.time() - scheduled > grace:
                    await self.missed(job.id, scheduled, grace)
                else:
                    await job.func(*job.args, **{**job.kwargs, "scheduled": scheduled})
            return []

        def callback(future) -> None:
            self._pending_futures.discard(future)
            if future.cancelled():  # the manager stopping
                self._run_job_success(job.id, [])
                return
            try:
                events = future.result()
            except BaseException:  # noqa: BLE001 - APScheduler's own bookkeeping
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        future = self._eventloop.create_task(work())
        future.add_done_callback(callback)
        self._pending_futures.add(future)


def build_scheduler(missed: Missed, refused: Callable[[str, list[float]], None]
                    ) -> AsyncIOScheduler:
    """The scheduler; `refused(job id, scheduled times)` hears of fires max_instances
    turned away (concurrency forbid)."""
    scheduler = AsyncIOScheduler(executors={"default": TimedExecutor(missed)},
                                 timezone="UTC")

    def listener(event) -> None:
        refused(event.job_id, [t.timestamp() for t in event.scheduled_run_times])

    scheduler.add_listener(listener, EVENT_JOB_MAX_INSTANCES)
    return scheduler
