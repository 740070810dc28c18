"""One run of a job, keyed by its scheduled time, and the pure decisions about runs:
their container names and labels, what to catch up after a gap, which to forget.

A run's key is its scheduled time in milliseconds, zero-padded so that keys sort in time
order; claiming that key (create-if-absent) is what makes a scheduled time run once.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, fields

RESULTS = ("claimed", "running", "succeeded", "failed", "missed", "skipped", "refused",
           "replaced")
ACTIVE = ("claimed", "running")
MANUAL = "started by flock cron run"  # the reason of a run made by run_now
JOB_LABEL = "flock.cron.job"
SCHEDULED_LABEL = "flock.cron.scheduled"


@dataclass
class Run:
    job: str
    scheduled: float  # epoch seconds, UTC
    started: float | None = None
    node: str = ""  # node name
    container: str = ""  # container ID
    name: str = ""  # container name
    exit_code: int | None = None
    finished: float | None = None
    result: str = "claimed"  # one of RESULTS
    reason: str = ""
    owner: str = ""  # the manager that claimed (or took over) the run

    @property
    def key(self) -> str:
        return run_key(self.scheduled)

    @property
    def active(self) -> bool:
        return self.result in ACTIVE

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Run:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def run_key(scheduled: float) -> str:
    return f"{round(scheduled * 1000):015d}"


def utc_stamp(scheduled: float) -> str:
    """20261206T131500Z: the container name's time."""
    return datetime.datetime.fromtimestamp(scheduled, datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def rfc3339(scheduled: float) -> str:
    moment = datetime.datetime.fromtimestamp(scheduled, datetime.UTC)
    text = moment.isoformat(timespec="milliseconds" if scheduled % 1 else "seconds")
    return text.replace("+00:00", "Z")


def container_name(job: str, scheduled: float) -> str:
    stamp = utc_stamp(scheduled)
    if scheduled % 1:  # sub-second intervals' runs would share a second's name
        stamp = stamp[:-1] + f"{round(scheduled % 1 * 1000):03d}Z"
    return f"{job}-{stamp}"


def run_body(body: dict, job: str, scheduled: float) -> dict:
    """The job's create body with the run's labels: the job and the scheduled time,
    which is how a new primary recognises a run's container and how tests count runs."""
    out = dict(body)
    out["Labels"] = {**(body.get("Labels") or {}), JOB_LABEL: job,
                     SCHEDULED_LABEL: rfc3339(scheduled)}
    return out


def catch_up_from(runs: list[Run], watermark: float, history: int) -> float:
    """From when a fire time with no record is owed: the job's `watermark`, or, once
    --history finished runs are kept (older ones may have been pruned, so handled), the
    oldest of them. Not the newest record: a primary that woke up late may have fired a
    later time while earlier ones were still owed."""
    kept = [r.scheduled for r in runs if r.reason != MANUAL]
    if kept and sum(not r.active for r in runs) >= history:
        return max(watermark, min(kept))
    return watermark


def unfired(times: list[float], runs: list[Run], since: float) -> list[float]:
    """The fire times in `times` after `since` that no record claims."""
    taken = {r.key for r in runs}
    return [t for t in times if t > since and run_key(t) not in taken]


def plan_catch_up(times: list[float], now: float, deadline: float | None
                  ) -> tuple[list[float], list[float]]:
    """Fire times that passed unfired (a failover, a restart): (to run, missed).
    With a deadline, each time still inside it runs once, the older ones are missed;
    without one they collapse into one run of the newest (APScheduler's coalesce)."""
    if deadline is None:
        return times[-1:], times[:-1]
    late = [t for t in times if now - t > deadline]
    return [t for t in times if now - t <= deadline], late


def within_history(runs: list[Run], history: int) -> list[Run]:
    """What a job's history shows: its active runs and its newest `history` finished
    ones, newest first. The older ones are being forgotten (their containers removed
    first), so they are not shown even while their records last."""
    forgotten = {r.key for r in beyond_history(runs, history)}
    return sorted((r for r in runs if r.key not in forgotten), key=lambda r: r.scheduled,
                  reverse=True)


def beyond_history(runs: list[Run], history: int) -> list[Run]:
    """The finished runs past the newest `history` of them: theirs to forget."""
    done = sorted((r for r in runs if not r.active), key=lambda r: r.scheduled, reverse=True)
    return done[history:]
