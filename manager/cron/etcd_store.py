"""Jobs and runs in etcd, under `<prefix>/_cron/` (jobs/NAME, runs/NAME/KEY), so that
every manager sees the same jobs and a run is claimed once for the whole cluster.

Each manager lists the keys once and then follows a watch from that revision, so its
memory (`Store.jobs`, `Store.runs`) trails etcd by a moment; its own writes land in
memory at once too. The `_` keeps the keys out of the agents' address list (etcd
discovery skips `_` segments). When etcd goes away the watch is started again, from
a fresh listing, until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from flock.discovery.backend import DiscoveryError
from flock.discovery.etcd_client import EtcdClient
from flock.manager.cron.jobs import Job
from flock.manager.cron.runs import Run
from flock.manager.cron.store import Store

log = logging.getLogger("flock.manager.cron")
RETRY = 1.0  # seconds between attempts to list and watch again after etcd went away
CLAIM_TRIES = 3


def encode(item: Job | Run) -> bytes:
    return json.dumps(item.to_dict(), sort_keys=True).encode()


class EtcdStore(Store):
    def __init__(self, client: EtcdClient, prefix: str) -> None:
        super().__init__()
        self.client = client
        self.root = f"{prefix.rstrip('/')}/_cron/"
        self._raw: dict[str, bytes] = {}  # run key path -> the bytes etcd holds
        self._task: asyncio.Task | None = None
        self.synced = asyncio.Event()  # set once the first listing is in memory

    def job_key(self, name: str) -> str:
        return f"{self.root}jobs/{name}"

    def run_path(self, run: Run) -> str:
        return f"{self.root}runs/{run.job}/{run.key}"

    async def start(self) -> None:
        with contextlib.suppress(DiscoveryError):
            await self._list()  # at once when etcd answers; else the follower retries
        self._task = asyncio.create_task(self._follow(), name="cron-store")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.client.close()

    async def _list(self) -> int:
        pairs, revision = await self.client.get_prefix(self.root)
        jobs, runs, raw = {}, {}, {}
        for key, value in pairs:
            item = self._decode(key, value)
            if isinstance(item, Job):
                jobs[item.name] = item
            elif isinstance(item, Run):
                runs.setdefault(item.job, {})[item.key] = item
                raw[key] = value
        changed = set(self.jobs) | set(jobs) | set(self.runs) | set(runs)
        self.jobs, self.runs, self._raw = jobs, runs, raw
        self.synced.set()
        for name in changed:
            self.on_change(name)
        return revision

    async def _follow(self) -> None:
        revision = None
        while True:
            try:
                if revision is None:
                    revision = await self._list()
                async for event in self.client.watch_prefix(self.root, revision + 1):
                    self._apply(event.kind, event.key, event.value)
            except asyncio.CancelledError:
                raise
            except DiscoveryError as exc:
                log.info("cron store: etcd watch ended (%s); listing again", exc)
            except Exception:  # noqa: BLE001 - keep following whatever one event did
                log.exception("cron store: watch failed; listing again")
            revision = None
            await asyncio.sleep(RETRY)

    def _apply(self, kind: str, key: str, value: bytes) -> None:
        rest = key[len(self.root):]
        if kind == "delete":
            section, _, tail = rest.partition("/")
            if section == "jobs":
                self.jobs.pop(tail, None)
                self.on_change(tail)
            elif section == "runs":
                job, _, run_key = tail.rpartition("/")
                self._forget_run(job, run_key)
                self._raw.pop(key, None)
                self.on_change(job)
            return
        item = self._decode(key, value)
        if isinstance(item, Job):
            self.jobs[item.name] = item
            self.on_change(item.name)
        elif isinstance(item, Run):
            self._remember_run(item)
            self._raw[key] = value
            self.on_change(item.job)

    def _decode(self, key: str, value: bytes) -> Job | Run | None:
        section = key[len(self.root):].partition("/")[0]
        try:
            data = json.loads(value)
            return Job.from_dict(data) if section == "jobs" else Run.from_dict(data)
        except (ValueError, TypeError) as exc:
            log.warning("cron store: ignoring %s: %s", key, exc)
            return None

    # ---------------------------------------------------------------- writes
    async def add_job(self, job: Job) -> bool:
        won, _ = await self.client.create(self.job_key(job.name), encode(job))
        if won:
            self.jobs[job.name] = job
            self.on_change(job.name)
        return won

    async def put_job(self, job: Job) -> None:
        await self.client.put(self.job_key(job.name), encode(job))
        self.jobs[job.name] = job
        self.on_change(job.name)

    async def delete_job(self, name: str) -> None:
        await self.client.delete(self.job_key(name))
        for run in list(self.runs.get(name, {}).values()):
            await self.client.delete(self.run_path(run))
        self.jobs.pop(name, None)
        self.runs.pop(name, None)
        self.on_change(name)

    async def claim(self, run: Run) -> bool:
        """A claim whose answer was lost (etcd timed out) may still have been made: the
        key is read back, and holds our very bytes when it was."""
        data, path = encode(run), self.run_path(run)
        for attempt in range(CLAIM_TRIES):
            try:
                won, _ = await self.client.create(path, data)
            except DiscoveryError:
                if attempt == CLAIM_TRIES - 1:
                    raise
                await asyncio.sleep(RETRY / 2)
                try:
                    held = await self.client.get(path)
                except DiscoveryError:
                    continue
                if held is None:
                    continue
                won = held == data
            if won:
                self._keep(run, data)
            return won
        return False

    async def take_over(self, old: Run, new: Run) -> bool:
        path = self.run_path(old)
        stored = self._raw.get(path, encode(old))
        data = encode(new)
        if not await self.client.replace(path, stored, data):
            return False
        self._keep(new, data)
        return True

    async def put_run(self, run: Run) -> None:
        data = encode(run)
        await self.client.put(self.run_path(run), data)
        self._keep(run, data)

    async def delete_run(self, run: Run) -> None:
        await self.client.delete(self.run_path(run))
        self._forget_run(run.job, run.key)
        self._raw.pop(self.run_path(run), None)
        self.on_change(run.job)

    def _keep(self, run: Run, data: bytes) -> None:
        self._remember_run(run)
        self._raw[self.run_path(run)] = data
        self.on_change(run.job)
