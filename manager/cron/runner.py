"""One run, from its claim to its result: the container goes through the one create path
(`Placement.run`: rules, strategy, reservations, name claim), its end is read from the
cluster's records, and what happened is recorded, published and counted.

Every scheduled time is claimed in the store before anything is created (claim =
create-if-absent on the run's key), so two managers that both think they are primary
for a moment still start it once. A run this manager did not finish (it was a replica
when a dead primary claimed it, or it restarted) is adopted: its container is waited
for when it exists, created when it does not and the time is still inside the deadline,
else the run is recorded missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace

from flock.docker_compat.paths import api_path
from flock.manager.cluster.agent_client import AgentError
from flock.manager.cluster.container_names import NameTaken
from flock.manager.cluster.model import Container
from flock.manager.cron.errors import CronError, ImageMissing, Unplaceable
from flock.manager.cron.jobs import Job
from flock.manager.cron.metrics import CronMetrics
from flock.manager.cron.runs import (
    JOB_LABEL,
    MANUAL,
    SCHEDULED_LABEL,
    Run,
    beyond_history,
    container_name,
    rfc3339,
    run_body,
    run_key,
)
from flock.manager.cron.store import Store
from flock.manager.observability.local_events import LocalEvents
from flock.manager.placement.create import Placement, Refused
from flock.manager.scheduler.rules import RuleError
from flock.manager.scheduler.scheduler import NoNodeAvailable
from flock.manager.scheduler.spec import spec_from_create

log = logging.getLogger("flock.manager.cron")

POLL = 0.25  # seconds between looks at a running run's container record
GONE = 10.0  # seconds a run's container may be missing from the view before it failed
CATCH_UP = 3.0  # seconds to wait for a claimed run's container to show in the view
ENDED = ("exited", "dead")


class Runner:
    def __init__(self, store: Store, placement: Placement, events: LocalEvents,
                 metrics: CronMetrics, owner: str) -> None:
        self.store = store
        self.placement = placement
        self.state = placement.state
        self.events = events
        self.metrics = metrics
        self.owner = owner
        self.waiters: dict[tuple[str, str], asyncio.Task] = {}  # (job, run key) -> task
        # runs being started or adopted here, each with what is set when that is over
        self.busy: dict[tuple[str, str], asyncio.Event] = {}

    async def stop(self) -> None:
        """Stop waiting (the runs stay recorded as running; whoever is primary next
        adopts them)."""
        tasks = list(self.waiters.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self.waiters.clear()

    # ------------------------------------------------------------ starting
    async def fire(self, job: Job, scheduled: float) -> Run | None:
        """Scheduled time `scheduled` of `job`: claim and start it, or record why it
        does not run. None when another claimer had it already."""
        late = time.time() - scheduled
        if job.deadline is not None and late > job.deadline:
            return await self.record(job, scheduled, "missed",
                                     f"{late:.1f}s late, past the {job.deadline:g}s deadline")
        key = run_key(scheduled)
        active = [r for r in self.store.job_runs(job.name) if r.active and r.key != key]
        if active and job.concurrency == "forbid":
            return await self.record(job, scheduled, "skipped",
                                     f"{active[0].name} is still running (concurrency forbid)")
        run = Run(job.name, scheduled, name=container_name(job.name, scheduled),
                  owner=self.owner)
        with self._busy((run.job, run.key)):
            if not await self._claim(run):
                return None
            return await self._start(job, run, replacing=active)

    async def run_now(self, job: Job) -> Run:
        """One run at once, outside the schedule; raises Unplaceable or ImageMissing
        (after recording it refused) when it cannot start."""
        scheduled = round(time.time(), 3)
        run = Run(job.name, scheduled, name=container_name(job.name, scheduled),
                  owner=self.owner, reason=MANUAL)
        with self._busy((run.job, run.key)):
            if not await self._claim(run):
                raise CronError(f"a run of {job.name} at {rfc3339(scheduled)} was not "
                                "started: it exists already, or the job was removed")
            active = [r for r in self.store.job_runs(job.name)
                      if r.active and r.key != run.key]
            return await self._start(job, run, raise_refusal=True, replacing=active)

    async def _claim(self, run: Run) -> bool:
        """Claim the run's time; False when another claimer has it, or when the job was
        removed while the claim was on its way (its record is taken back)."""
        if not await self.store.claim(run):
            return False
        if run.job not in self.store.jobs:
            await self.store.delete_run(run)
            return False
        return True

    async def _start(self, job: Job, run: Run, raise_refusal: bool = False,
                     replacing: list[Run] | None = None) -> Run:
        """Create and start the claimed `run`'s container (after stopping the `replacing`
        runs, with concurrency replace), record it running and wait for its end in the
        background. The caller marks it busy from before the claim, so that a removal
        waits for all of it."""
        if replacing and job.concurrency == "replace":
            await self._replace(replacing, run)
        return await self._execute(job, run, raise_refusal)

    @contextlib.contextmanager
    def _busy(self, key: tuple[str, str]):
        """Marks the run busy for the block; inside another block of the same run, the
        outer one keeps the mark."""
        if key in self.busy:
            yield
            return
        done = self.busy[key] = asyncio.Event()
        try:
            yield
        finally:
            done.set()
            del self.busy[key]

    async def settle(self, job: str, timeout: float = 15) -> None:
        """Until the runs of `job` being started or adopted here have their container
        (or their refusal): a removed job's container does not appear after the removal
        has answered. At most `timeout` seconds: a node that does not answer does not
        hold the removal up for longer."""
        waits = [asyncio.ensure_future(done.wait())
                 for (name, _), done in list(self.busy.items()) if name == job]
        if waits:
            _, late = await asyncio.wait(waits, timeout=timeout)
            for wait in late:
                wait.cancel()

    async def _execute(self, job: Job, run: Run, raise_refusal: bool) -> Run:
        stored = self.store.run(run.job, run.key)
        if stored is not None and stored.result == "replaced":  # while it waited its turn
            return stored
        body = run_body(job.body, job.name, run.scheduled)
        refusal: CronError | None = None
        try:
            spec = spec_from_create(body, run.name)
            placed = await self.placement.run(body, spec, run.name)
        except NameTaken:  # made a moment ago by whoever claimed it before us
            found = self.find_container(job.name, run.scheduled)
            if found is None:
                refusal = Unplaceable(f"container name {run.name} is taken")
            else:
                return await self._running(run, found)
        except (RuleError, NoNodeAvailable) as exc:
            refusal = Unplaceable(str(exc))
        except Refused as exc:
            found = self.find_container(job.name, run.scheduled) if exc.status == 304 else None
            if found is not None:  # "already started": a start retried after a lost answer
                return await self._running(run, found)
            refusal = _refused(exc, job.image)
        except AgentError as exc:
            refusal = Unplaceable(f"the node did not answer: {exc}")
        if refusal is not None:
            await self.end(replace(run, finished=time.time()), "refused", str(refusal))
            if raise_refusal:
                raise refusal
            return self.store.run(run.job, run.key) or run
        return await self._running(run, placed.record)

    async def _running(self, run: Run, container: Container) -> Run:
        node = self.state.node(container.node_id)
        if run.job not in self.store.jobs:  # removed while its container was made
            return replace(run, container=container.id)
        stored = self.store.run(run.job, run.key)
        replaced = stored is not None and stored.result == "replaced"  # while it was made
        run = replace(stored if replaced else run, result="replaced" if replaced else "running",
                      started=run.started or time.time(), container=container.id,
                      node=node.name if node else container.node_id, owner=self.owner)
        await self.store.put_run(run)
        if replaced:
            await self._docker(container, "POST", api_path("containers", container.id, "stop"),
                               "t=5")
        else:
            self._publish("start", run)
        self.watch(run)
        return run

    async def _replace(self, active: list[Run], by: Run) -> None:
        """concurrency replace: the runs still going are recorded replaced, then their
        containers stopped (their waiters keep the result and add the exit code)."""
        for old in active:
            ended = replace(old, result="replaced", reason=f"replaced by {by.name}")
            await self.store.put_run(ended)
            self._publish("replaced", ended)
            self.metrics.ended(old.job, "replaced")
            container = self.state.container(old.container) if old.container else None
            if container is not None:
                await self._docker(container, "POST", api_path("containers", container.id,
                                                               "stop"), "t=5")

    # ------------------------------------------------------------ adopting
    def unattended(self, runs: list[Run]) -> list[Run]:
        """The active runs nobody here is starting or waiting for."""
        return [r for r in runs if r.active and (r.job, r.key) not in self.busy
                and (r.job, r.key) not in self.waiters]

    async def adopt(self, job: Job, run: Run) -> None:
        """A run left claimed or running by another manager (or by this one before a
        restart, or one whose end could not be recorded): wait for it, finish it, or
        record it missed."""
        key = (run.job, run.key)
        if key in self.waiters or key in self.busy:
            return
        with self._busy(key):
            await self._adopt(job, run)

    async def _adopt(self, job: Job, run: Run) -> None:
        if run.result == "running" and run.container:
            mine = replace(run, owner=self.owner)
            if await self.store.take_over(run, mine):
                self.watch(mine)
            return
        found = await self._await_container(job.name, run.scheduled)
        mine = replace(run, owner=self.owner)
        if not await self.store.take_over(run, mine):
            return  # another manager took it first
        if found is not None:
            if found.state == "created":  # its manager died between create and start
                await self._docker(found, "POST", api_path("containers", found.id, "start"))
            await self._running(mine, found)
            return
        late = time.time() - run.scheduled
        if job.deadline is not None and late > job.deadline and run.reason != MANUAL:
            await self.end(replace(mine, finished=time.time()), "missed",
                           f"its manager went away; {late:.1f}s late, past the deadline")
            return
        await self._execute(job, mine, False)

    async def _await_container(self, job: str, scheduled: float) -> Container | None:
        deadline = time.monotonic() + CATCH_UP
        while (found := self.find_container(job, scheduled)) is None \
                and time.monotonic() < deadline:
            await asyncio.sleep(POLL)
        return found

    def find_container(self, job: str, scheduled: float) -> Container | None:
        """The run's container, by the labels every run's container carries."""
        stamp = rfc3339(scheduled)
        for container in self.state.containers():
            labels = container.labels or {}
            if labels.get(JOB_LABEL) == job and labels.get(SCHEDULED_LABEL) == stamp:
                return container
        return None

    # ------------------------------------------------------------ waiting
    def watch(self, run: Run) -> None:
        key = (run.job, run.key)
        if key not in self.waiters or self.waiters[key].done():
            self.waiters[key] = asyncio.create_task(self._wait(run), name=f"cron-{run.name}")

    async def finished(self, run: Run | None) -> None:
        """Until `run` (started by this manager) has ended."""
        task = self.waiters.get((run.job, run.key)) if run is not None else None
        if task is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(task)

    async def _wait(self, run: Run) -> None:
        try:
            code = await self._exit_code(run)
            current = self.store.run(run.job, run.key) or run
            finished = replace(current, exit_code=code, finished=time.time())
            if run.job not in self.store.jobs:
                return  # the job was removed meanwhile: no record to bring back
            if current.result == "replaced":
                await self.store.put_run(finished)
            elif code is None:
                await self.end(finished, "failed", "its container went away before it exited")
            else:
                await self.end(finished, "succeeded" if code == 0 else "failed")
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a store away: the next primary adopts it
            log.exception("cron run %s: could not record its end", run.name)
        finally:
            self.waiters.pop((run.job, run.key), None)

    async def _exit_code(self, run: Run) -> int | None:
        missing_since = None
        while True:
            container = self.state.container(run.container)
            if container is None:
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since > GONE:
                    return None
            elif container.state in ENDED:
                return await self._inspect_exit(container)
            else:
                missing_since = None
            await asyncio.sleep(POLL)

    async def _inspect_exit(self, container: Container) -> int | None:
        status, answer = await self._docker(container, "GET",
                                            api_path("containers", container.id, "json"))
        if status == 200 and isinstance(answer, dict):
            return int((answer.get("State") or {}).get("ExitCode") or 0)
        text = str((container.summary or {}).get("Status") or "")
        digits = text.partition("(")[2].partition(")")[0]
        return int(digits) if digits.lstrip("-").isdigit() else None

    async def _docker(self, container: Container, method: str, path: str, query: str = ""
                      ) -> tuple[int, object]:
        node = self.state.node(container.node_id)
        if node is None:
            return 0, None
        try:
            return await self.placement.clients.require(node).request_json(method, path, query)
        except AgentError as exc:
            log.info("cron: %s %s on %s: %s", method, path, node.name, exc)
            return 0, None

    # ------------------------------------------------------------ recording
    async def record(self, job: Job, scheduled: float, result: str, reason: str
                     ) -> Run | None:
        """A scheduled time that does not run (missed, skipped): recorded once."""
        run = Run(job.name, scheduled, name=container_name(job.name, scheduled),
                  finished=time.time(), result=result, reason=reason, owner=self.owner)
        if not await self.store.claim(run):
            return None
        self._ended(run)
        await self.prune(job.name)
        return run

    async def end(self, run: Run, result: str, reason: str = "") -> None:
        if run.job not in self.store.jobs:  # removed meanwhile: no record to bring back
            return
        run = replace(run, result=result, reason=reason or run.reason)
        await self.store.put_run(run)
        self._ended(run)
        await self.prune(run.job)

    def _ended(self, run: Run) -> None:
        log.info("cron run %s: %s%s", run.name, run.result,
                 f" ({run.reason})" if run.reason and run.reason != MANUAL else "")
        self._publish(run.result, run)
        self.metrics.ended(run.job, run.result)

    async def prune(self, name: str) -> None:
        """Forget the finished runs past the job's --history, with their containers."""
        job = self.store.jobs.get(name)
        if job is None:
            return
        for old in beyond_history(self.store.job_runs(name), job.history):
            container = self.state.container(old.container) if old.container else None
            if container is not None:
                await self._docker(container, "DELETE", api_path("containers", container.id),
                                   "force=1&v=1")
            await self.store.delete_run(old)

    def _publish(self, action: str, run: Run) -> None:
        self.events.publish("cron", action, run.job, {
            "name": run.name, "scheduled": rfc3339(run.scheduled), "node": run.node,
            "container": run.container, "result": run.result, "reason": run.reason,
            "exitCode": "" if run.exit_code is None else str(run.exit_code)})


def _refused(exc: Refused, image: str) -> CronError:
    answer = exc.answer
    message = answer.get("message") if isinstance(answer, dict) else str(answer)
    if exc.status == 404 and "image" in str(message).lower():
        return ImageMissing(f'image "{image}" is on no node: pull it first '
                            f"(docker pull {image}): {message}")
    return Unplaceable(f"the node refused the run ({exc.status}): {message}")
