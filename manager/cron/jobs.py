"""A cron job: what to run (a Docker create body), when (SPEC, zone) and under which
rules (concurrency, catch-up deadline, history kept). Pure: checks and JSON shapes only;
what needs the cluster (can a node take it, is the image anywhere) is service.py's."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from flock.manager.cron.errors import (
    CronError,
    ImageMissing,
    InvalidJob,
    InvalidSchedule,
    JobExists,
    NoSuchJob,
    UnknownTimeZone,
    Unplaceable,
)
from flock.manager.cron.schedule import parse_schedule

__all__ = ["CONCURRENCY", "CronError", "ImageMissing", "InvalidJob", "InvalidSchedule", "Job",
           "JobExists", "NoSuchJob", "UnknownTimeZone", "Unplaceable", "check_job",
           "parse_schedule"]

CONCURRENCY = ("allow", "forbid", "replace")
# A job's name becomes its runs' container names (NAME-20261206T131500Z): Docker's
# container name rule, minus the room the time takes.
NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,199}")


@dataclass(frozen=True)
class Job:
    name: str
    schedule: str
    time_zone: str = "UTC"
    concurrency: str = "allow"  # allow | forbid | replace
    deadline: float | None = None  # seconds a run may start late; None: no limit given
    history: int = 10  # finished runs kept (records and containers)
    suspended: bool = False
    body: dict = field(default_factory=dict)  # a Docker create body; rules in its Env
    created: float = 0.0  # epoch; also where an @every interval starts
    resumed: float = 0.0  # epoch of the last resume: nothing before it is caught up

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Job:
        """A job as a store wrote it; unknown keys (a newer manager's) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def image(self) -> str:
        return str(self.body.get("Image") or "")

    @property
    def watermark(self) -> float:
        """Before this instant no fire time is this job's to run or catch up."""
        return max(self.created, self.resumed)


def check_job(job: Job) -> None:
    """Everything about `job` that can be judged alone; raises the CronError that says
    what is wrong (the schedule and zone by parsing them)."""
    if not isinstance(job.name, str) or not NAME.fullmatch(job.name):
        raise InvalidJob(f'invalid job name "{job.name}": use letters, digits and _ . - '
                         "(starting with a letter or digit, at most 200)")
    if job.concurrency not in CONCURRENCY:
        raise InvalidJob(f'invalid concurrency "{job.concurrency}": expected allow, forbid '
                         "or replace")
    if isinstance(job.history, bool) or not isinstance(job.history, int) or job.history < 1:
        raise InvalidJob(f"invalid history {job.history!r}: keep at least 1 finished run")
    if job.deadline is not None and (not isinstance(job.deadline, (int, float))
                                     or job.deadline <= 0):
        raise InvalidJob(f"invalid deadline {job.deadline!r}: give a positive duration "
                         "(e.g. 5m)")
    if not isinstance(job.body, dict) or not isinstance(job.body.get("Image"), str) \
            or not job.body["Image"]:
        raise InvalidJob("a job needs an image to run")
    parse_schedule(job.schedule, job.time_zone, job.created)
