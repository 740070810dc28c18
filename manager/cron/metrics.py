"""The cron metrics, on the manager's registry (`GET /metrics`):

- flock_cron_runs_total{job,result}: runs by how they ended (succeeded, failed, missed,
  skipped, refused, replaced), counted by the manager that recorded the end;
- flock_cron_last_success_timestamp_seconds{job}: when the job's newest successful run
  finished (from the store, so any manager answers and it survives failover).
"""

from __future__ import annotations

from collections.abc import Callable

from flock.common.metrics import Registry


class CronMetrics:
    def __init__(self, registry: Registry, last_success: Callable[[], dict[str, float]]
                 ) -> None:
        self.runs = registry.counter(
            "flock_cron_runs_total",
            "Cron runs by job and result (succeeded, failed, missed, skipped, refused, "
            "replaced).", ["job", "result"])

        def source() -> dict[tuple[str], float]:
            return {(job,): when for job, when in last_success().items()}

        registry.gauge("flock_cron_last_success_timestamp_seconds",
                       "When each cron job's newest successful run finished (epoch seconds).",
                       ["job"], source)

    def ended(self, job: str, result: str) -> None:
        self.runs.labels(job, result).inc()
