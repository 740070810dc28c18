"""The cluster page's Jobs panel: each cron job with its next run and last result.

Read from the cron service on every look (a handful of jobs, in memory), not from the
state's generation counter: a job's next run moves without any container changing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flock.manager.api.cluster_parts import Cluster


def job_rows(cluster: Cluster) -> list[dict]:
    """One entry per job, by name; [] on a manager without cron jobs."""
    cron = getattr(cluster, "cron", None)
    if cron is None:
        return []
    rows = []
    for status in sorted(cron.list(), key=lambda s: s.job.name):
        job, last = status.job, status.last
        rows.append({
            "name": job.name, "schedule": job.schedule, "time_zone": job.time_zone,
            "suspended": job.suspended, "next_run": status.next_run,
            "last": None if last is None else {
                "result": last.result, "scheduled": last.scheduled, "node": last.node,
                "exit_code": last.exit_code, "finished": last.finished,
                "reason": last.reason},
        })
    return rows
