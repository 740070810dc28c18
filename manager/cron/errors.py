"""What can be wrong with a job: one class per answer a front gives (the ClusterService
maps them to gRPC codes, the CLI to its messages)."""

from __future__ import annotations


class CronError(Exception):
    """A cron request that cannot be done; str() is the whole message."""


class InvalidSchedule(CronError):
    """The SPEC does not parse; the message names the bad field."""


class UnknownTimeZone(CronError):
    """--time-zone is no IANA zone this machine knows."""


class JobExists(CronError):
    """The name is taken by another job."""


class NoSuchJob(CronError):
    """No job has that name."""


class Unplaceable(CronError):
    """No node can ever meet the job's rules (the scheduler's reasons follow)."""


class ImageMissing(CronError):
    """The job's image is on no node."""


class InvalidJob(CronError):
    """Anything else wrong with a job (name, concurrency, history, deadline, body)."""
