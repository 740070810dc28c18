"""Where jobs and their runs live: the interface both stores keep, and the file store.

Every store keeps the whole of it in memory (`jobs`, `runs`) so that listings are
answered without I/O, and tells `on_change(job name)` of every change, its own or (etcd)
another manager's. `claim` is the one write that decides: it makes a run's record only
if no record has that key, so a scheduled time is run by one claimer; `take_over`
replaces a record only if it is still the one read (a new primary finishing a dead
one's run).

Without etcd discovery there is one manager, and the file store is its memory written
to STATE_DIR/cron.json after every change: a temporary file, fsync, rename, fsync of
the folder, so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from flock.manager.cron.jobs import Job
from flock.manager.cron.runs import Run

log = logging.getLogger("flock.manager.cron")


class Store(ABC):
    """The memory both stores share; the subclasses (FileStore, EtcdStore) make it last
    and must implement every abstract write below."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.runs: dict[str, dict[str, Run]] = {}  # job name -> run key -> run
        self.on_change: Callable[[str], None] = lambda name: None

    async def start(self) -> None:  # noqa: B027 - a hook: the file store has nothing to start
        return None

    async def stop(self) -> None:  # noqa: B027 - a hook: the file store has nothing to stop
        return None

    def job_runs(self, name: str) -> list[Run]:
        """The job's runs, newest first."""
        return sorted(self.runs.get(name, {}).values(), key=lambda r: r.scheduled,
                      reverse=True)

    def run(self, name: str, key: str) -> Run | None:
        return self.runs.get(name, {}).get(key)

    # What each store makes durable; each returns once the change is kept.
    @abstractmethod
    async def add_job(self, job: Job) -> bool:
        """Store a new job; False when one of that name exists."""
        ...

    @abstractmethod
    async def put_job(self, job: Job) -> None:
        ...

    @abstractmethod
    async def delete_job(self, name: str) -> None:
        """The job and every record of its runs."""
        ...

    @abstractmethod
    async def claim(self, run: Run) -> bool:
        """Record `run` only if its key is free: True when this call made it."""
        ...

    @abstractmethod
    async def take_over(self, old: Run, new: Run) -> bool:
        """Replace `old` by `new` only while `old` is still what is stored."""
        ...

    @abstractmethod
    async def put_run(self, run: Run) -> None:
        ...

    @abstractmethod
    async def delete_run(self, run: Run) -> None:
        ...

    # Memory, for the subclasses.
    def _remember_run(self, run: Run) -> None:
        self.runs.setdefault(run.job, {})[run.key] = run

    def _forget_run(self, job: str, key: str) -> None:
        runs = self.runs.get(job)
        if runs is not None:
            runs.pop(key, None)
            if not runs and job not in self.jobs:
                del self.runs[job]


class FileStore(Store):
    """One manager's jobs in a JSON file (no etcd)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    async def start(self) -> None:
        self.load()

    def load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot read the cron jobs in {self.path}: {exc}") from None
        for item in data.get("jobs", []):
            job = Job.from_dict(item)
            self.jobs[job.name] = job
        for item in data.get("runs", []):
            self._remember_run(Run.from_dict(item))

    def save(self) -> None:
        data = {"jobs": [j.to_dict() for j in self.jobs.values()],
                "runs": [r.to_dict() for runs in self.runs.values() for r in runs.values()]}
        write_atomically(self.path, json.dumps(data, indent=1).encode())

    async def add_job(self, job: Job) -> bool:
        if job.name in self.jobs:
            return False
        await self.put_job(job)
        return True

    async def put_job(self, job: Job) -> None:
        self.jobs[job.name] = job
        self.save()
        self.on_change(job.name)

    async def delete_job(self, name: str) -> None:
        self.jobs.pop(name, None)
        self.runs.pop(name, None)
        self.save()
        self.on_change(name)

    async def claim(self, run: Run) -> bool:
        if self.run(run.job, run.key) is not None:
            return False
        await self.put_run(run)
        return True

    async def take_over(self, old: Run, new: Run) -> bool:
        if self.run(old.job, old.key) != old:
            return False
        await self.put_run(new)
        return True

    async def put_run(self, run: Run) -> None:
        self._remember_run(run)
        self.save()
        self.on_change(run.job)

    async def delete_run(self, run: Run) -> None:
        self._forget_run(run.job, run.key)
        self.save()
        self.on_change(run.job)


def write_atomically(path: Path, data: bytes) -> None:
    """`data` into `path` whole or not at all, surviving a crash (tmp, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
