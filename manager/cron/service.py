"""CronService: what the fronts call (create, list, run now...) and what fires the jobs.

Every manager keeps the jobs (its store follows etcd, or is the file); only the primary
fires. When a manager becomes primary (at start without replication) it first adopts
the runs a previous primary left unfinished, makes up the scheduled times nobody fired
(once each, inside --deadline; else recorded missed), and then hands each job to
APScheduler from the first time after that. Losing primacy takes the jobs off
APScheduler at once; the runs this manager started keep being waited for, and the new
primary's claims make sure nothing is started twice meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from apscheduler.triggers.base import BaseTrigger

from flock.common.metrics import Registry
from flock.manager.cron.errors import (
    CronError,
    ImageMissing,
    InvalidJob,
    JobExists,
    NoSuchJob,
    Unplaceable,
)
from flock.manager.cron.jobs import Job, check_job
from flock.manager.cron.metrics import CronMetrics
from flock.manager.cron.runner import Runner
from flock.manager.cron.runs import (
    Run,
    catch_up_from,
    plan_catch_up,
    run_body,
    unfired,
    within_history,
)
from flock.manager.cron.schedule import fire_times, next_fire, parse_schedule
from flock.manager.cron.store import Store
from flock.manager.cron.timing import build_scheduler, job_options
from flock.manager.observability.local_events import LocalEvents
from flock.manager.placement.create import Placement
from flock.manager.scheduler.rules import RuleError
from flock.manager.scheduler.scheduler import NoNodeAvailable
from flock.manager.scheduler.spec import spec_from_create

log = logging.getLogger("flock.manager.cron")
PRIMACY_CHECK = 0.2  # seconds between looks at whether this manager is the primary
SWEEP = 25  # primacy checks between looks for runs nobody attends (etcd lost an answer)
STALE = 10.0  # seconds after its time a run nobody attends is adopted
CATCH_UP_LIMIT = 1000  # missed times looked at per job after a gap


@dataclass(frozen=True)
class JobStatus:
    job: Job
    next_run: float | None  # epoch; None when suspended or the schedule has no more
    last: Run | None  # the newest run, whatever its result


class CronService:
    def __init__(self, store: Store, placement: Placement, events: LocalEvents,
                 registry: Registry, owner: str, is_primary: Callable[[], bool]) -> None:
        self.store = store
        self.placement = placement
        self.is_primary = is_primary
        self.metrics = CronMetrics(registry, self._last_success)
        self.runner = Runner(store, placement, events, self.metrics, owner)
        self.timer = build_scheduler(self._missed, self._refused)
        self.primary = False  # whether this manager fires (it took charge)
        self._scheduled: dict[str, Job] = {}  # what APScheduler has of each job
        self._triggers: dict[tuple[str, str, float], BaseTrigger] = {}
        self._task: asyncio.Task | None = None
        self._syncs: set[asyncio.Task] = set()
        store.on_change = self._changed

    # ------------------------------------------------------------ lifetime
    async def start(self) -> None:
        await self.store.start()
        self.timer.start()
        self._task = asyncio.create_task(self._follow_primacy(), name="cron-primacy")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for task in list(self._syncs):
            task.cancel()
        if self.timer.running:
            self.timer.shutdown(wait=False)
        await self.runner.stop()
        await self.store.stop()

    async def _follow_primacy(self) -> None:
        rounds = 0
        while True:
            rounds += 1
            primary = self.is_primary()
            if primary and not self.primary:
                try:
                    await self._take_charge()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - etcd away: try again soon
                    log.warning("cron: cannot take charge of the jobs yet: %s", exc)
                    self._let_go()
            elif not primary and self.primary:
                log.info("cron: no longer primary; the jobs fire elsewhere")
                self._let_go()
            elif primary:
                for name in list(self.store.jobs):  # a sync that failed is tried again
                    self._changed(name)
                if rounds % SWEEP == 0:
                    self._sweep()
            await asyncio.sleep(PRIMACY_CHECK)

    async def _take_charge(self) -> None:
        self.primary = True
        log.info("cron: primary: firing %d jobs", len(self.store.jobs))
        for job in list(self.store.jobs.values()):
            await self._sync(job.name)

    def _sweep(self) -> None:
        """Adopt the runs left claimed or running with nobody attending them: a record
        etcd failed to take, a waiter that gave up."""
        now = time.time()
        for name, job in list(self.store.jobs.items()):
            for run in self.runner.unattended(self.store.job_runs(name)):
                if now - run.scheduled > STALE:
                    self._spawn(self.runner.adopt(job, run))

    def _spawn(self, coro) -> None:
        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                log.warning("cron: %s", exc)

        task = asyncio.get_running_loop().create_task(guarded())
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    def _let_go(self) -> None:
        self.primary = False
        self.timer.remove_all_jobs()
        self._scheduled.clear()

    # ------------------------------------------------------------ firing
    def _changed(self, name: str) -> None:
        """The store changed `name` (a job or its runs): reschedule it if it is ours."""
        if not self.primary or self._scheduled.get(name) == self.store.jobs.get(name):
            return
        self._spawn(self._sync(name))

    async def _sync(self, name: str) -> None:
        """Put APScheduler in line with the stored job: adopt and catch up first."""
        try:
            await self._schedule(name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the store away: the next look retries
            log.warning("cron: cannot schedule job %s yet: %s", name, exc)
            self._scheduled.pop(name, None)

    async def _schedule(self, name: str) -> None:
        job = self.store.jobs.get(name)
        if job == self._scheduled.get(name):
            return
        if self.timer.get_job(name) is not None:
            self.timer.remove_job(name)
        self._scheduled.pop(name, None)
        if job is None or job.suspended:
            if job is not None:
                self._scheduled[name] = job
            return
        self._scheduled[name] = job  # before any await: a second sync waits for nothing
        cutoff = time.time()
        for run in self.store.job_runs(name):
            if run.active:
                await self.runner.adopt(job, run)
        await self._catch_up(job, cutoff)
        if self.primary and self.is_primary() and self._scheduled.get(name) == job:
            first = next_fire(self.trigger(job), cutoff)
            self.timer.add_job(self._fire, self.trigger(job), args=(name,),
                               kwargs={"scheduled": 0.0}, id=name, name=name,
                               next_run_time=_moment(first), replace_existing=True,
                               **job_options(job))

    async def _catch_up(self, job: Job, cutoff: float) -> None:
        """The times up to `cutoff` that nobody fired (no record claims them): made up
        once each inside --deadline (else missed)."""
        runs = self.store.job_runs(job.name)
        since = catch_up_from(runs, job.watermark, job.history)
        times = fire_times(self.trigger(job), since, cutoff, CATCH_UP_LIMIT)
        run, missed = plan_catch_up(unfired(times, runs, since), cutoff, job.deadline)
        for when in missed:
            if not self.is_primary():
                return
            await self.runner.record(job, when, "missed", "no primary manager fired it in time")
        for when in run:
            if not self.is_primary():  # deposed meanwhile: the new primary makes them up
                return
            log.info("cron: making up %s's run of %s", job.name,
                     datetime.datetime.fromtimestamp(when, datetime.UTC).isoformat())
            await self.runner.fire(replace(job, deadline=None), when)

    async def _fire(self, name: str, scheduled: float) -> None:
        job = self.store.jobs.get(name)
        if job is None or job.suspended or not self.primary or not self.is_primary():
            return
        run = await self.runner.fire(job, scheduled)
        await self.runner.finished(run)  # max_instances counts runs until they end

    async def _missed(self, name: str, scheduled: float, grace: float) -> None:
        job = self.store.jobs.get(name)
        if job is not None and self.primary:
            late = time.time() - scheduled
            await self.runner.record(job, scheduled, "missed",
                                     f"{late:.1f}s late, past the {grace:g}s deadline")

    def _refused(self, name: str, times: list[float]) -> None:
        job = self.store.jobs.get(name)
        if job is None or not self.primary:
            return
        for when in times:
            self._spawn(self.runner.record(job, when, "skipped", "the previous run is still "
                                                                "running (concurrency forbid)"))

    def trigger(self, job: Job) -> BaseTrigger:
        key = (job.schedule, job.time_zone, job.created)
        if key not in self._triggers:
            if len(self._triggers) > 4 * max(16, len(self.store.jobs)):
                self._triggers.clear()
            self._triggers[key] = parse_schedule(job.schedule, job.time_zone, job.created)
        return self._triggers[key]

    # ------------------------------------------------------------ the fronts' calls
    async def create(self, job: Job) -> Job:
        """Check and store a new job; nothing is stored when anything is wrong."""
        if not job.created:
            job = replace(job, created=float(int(time.time())))
        check_job(job)
        if job.name in self.store.jobs:
            raise JobExists(f'a job named "{job.name}" already exists')
        self._check_cluster(job)
        if not await self.store.add_job(job):
            raise JobExists(f'a job named "{job.name}" already exists')
        log.info("cron: job %s created (%s, %s)", job.name, job.schedule, job.time_zone)
        return job

    def _check_cluster(self, job: Job) -> None:
        """Unplaceable when no node could ever take a run (its hard constraints, or more
        memory than any node has), ImageMissing when no node has its image."""
        try:
            spec = spec_from_create(run_body(job.body, job.name, job.created), job.name)
        except RuleError as exc:
            raise InvalidJob(str(exc)) from None
        state = self.placement.state
        dry = replace(spec, cpus=0.0, memory=0, ports=[], dependencies=[], affinities=[])
        try:
            self.placement.scheduler.place_by_chain(state, dry)
        except NoNodeAvailable as exc:
            raise Unplaceable(f"no node can ever run job {job.name}: {exc}") from None
        biggest = max((n.memory for n in state.nodes()), default=0)
        if spec.memory and biggest and spec.memory > biggest:
            raise Unplaceable(f"no node can ever run job {job.name}: it reserves "
                              f"{spec.memory} bytes of memory, the largest node has {biggest}")
        if not state.image_holders(job.image):
            raise ImageMissing(f'image "{job.image}" is on no node: pull it first '
                               f"(docker pull {job.image})")

    def _job(self, name: str) -> Job:
        job = self.store.jobs.get(name)
        if job is None:
            raise NoSuchJob(f"no such job: {name}")
        return job

    async def remove(self, name: str) -> None:
        """The job and its run records; its containers stay (a running one ends on its
        own), like `docker rm` of a job would not guess about them. Answers once the runs
        being started have their containers, so that none appears afterwards."""
        self._job(name)
        await self.store.delete_job(name)
        # Off the timer now, not when the store's watch tells us: no run of a removed job
        # starts after `flock cron rm` has answered.
        if self.timer.get_job(name) is not None:
            self.timer.remove_job(name)
        self._scheduled.pop(name, None)
        await self.runner.settle(name)
        log.info("cron: job %s removed", name)

    async def suspend(self, name: str) -> Job:
        job = self._job(name)
        if not job.suspended:
            job = replace(job, suspended=True)
            await self.store.put_job(job)
        return job

    async def resume(self, name: str) -> Job:
        """Fires again from now on: the times it was suspended for are not made up."""
        job = self._job(name)
        if job.suspended:
            job = replace(job, suspended=False, resumed=time.time())
            await self.store.put_job(job)
        return job

    async def run_now(self, name: str) -> Run:
        return await self.runner.run_now(self._job(name))

    def list(self) -> list[JobStatus]:
        return [self.get(name) for name in sorted(self.store.jobs)]

    def get(self, name: str) -> JobStatus:
        job = self._job(name)
        runs = self.store.job_runs(name)
        upcoming = None if job.suspended else next_fire(self.trigger(job), time.time())
        return JobStatus(job, upcoming, runs[0] if runs else None)

    async def history(self, name: str) -> list[Run]:
        job = self._job(name)
        return within_history(self.store.job_runs(name), job.history)

    def _last_success(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name, runs in self.store.runs.items():
            done = [r.finished or r.scheduled for r in runs.values() if r.result == "succeeded"]
            if done:
                out[name] = max(done)
        return out


def _moment(when: float | None) -> datetime.datetime | None:
    return None if when is None else datetime.datetime.fromtimestamp(when, datetime.UTC)


__all__ = ["CronError", "CronService", "JobStatus"]
