"""Cron jobs as ClusterService messages (protos/cluster.proto) and back, and the cron
service's refusals as gRPC codes.

A job travels as the options `flock run` takes (a ContainerSpec and `-v` volumes), so the
CLI needs no Docker body of its own; the manager turns them into the Docker create body
`docker run` would send (grpc.create_body plus the volumes here), and that body is what
each run is made from. Answers carry the spec read back from the body, and the body
itself as JSON for `flock cron inspect`, so nothing the runs use is hidden.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import grpc

from flock.manager.cron.jobs import (
    CronError,
    ImageMissing,
    InvalidJob,
    InvalidSchedule,
    Job,
    JobExists,
    NoSuchJob,
    UnknownTimeZone,
    Unplaceable,
)
from flock.protos import cluster_pb2 as pb

if TYPE_CHECKING:
    from flock.manager.cron.runs import Run
    from flock.manager.cron.service import JobStatus

# Most specific first: a subclass of one of these takes its parent's code.
CRON_CODES: tuple[tuple[type[CronError], grpc.StatusCode], ...] = (
    (InvalidSchedule, grpc.StatusCode.INVALID_ARGUMENT),
    (UnknownTimeZone, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidJob, grpc.StatusCode.INVALID_ARGUMENT),
    (JobExists, grpc.StatusCode.ALREADY_EXISTS),
    (NoSuchJob, grpc.StatusCode.NOT_FOUND),
    (Unplaceable, grpc.StatusCode.FAILED_PRECONDITION),
    (ImageMissing, grpc.StatusCode.FAILED_PRECONDITION),
)


def cron_code(exc: CronError) -> grpc.StatusCode:
    """The gRPC code of a refusal; one of no known kind is a bad argument, since the
    service refuses only what it was asked."""
    for kind, code in CRON_CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INVALID_ARGUMENT


def with_volumes(body: dict, volumes: list[str]) -> dict:
    """`-v` as the docker CLI sends it: SRC:DEST[:MODE] is a bind (or named volume) in
    HostConfig.Binds, a lone /DEST an anonymous volume in Volumes."""
    binds, anonymous = [], {}
    for text in volumes:
        if not text or text.startswith(":") or text.endswith(":"):
            raise InvalidJob(f'invalid volume "{text}": expected SRC:DEST[:MODE] or /DEST')
        if ":" in text:
            binds.append(text)
        elif text.startswith("/"):
            anonymous[text] = {}
        else:
            raise InvalidJob(f'invalid volume "{text}": a volume without a destination '
                             "must be an absolute path (/DEST), else give SRC:DEST")
    if binds:
        body.setdefault("HostConfig", {})["Binds"] = binds
    if anonymous:
        body["Volumes"] = anonymous
    return body


def job_from_message(message: pb.Job, body: dict) -> Job:
    """The Job to create; fields left empty take the Job's own defaults."""
    given: dict = {"name": message.name, "schedule": message.schedule, "body": body}
    if message.time_zone:
        given["time_zone"] = message.time_zone
    if message.concurrency:
        given["concurrency"] = message.concurrency
    if message.HasField("deadline"):
        given["deadline"] = message.deadline
    if message.history:
        given["history"] = message.history
    if message.suspended:
        given["suspended"] = True
    return Job(**given)


def spec_of(body: dict) -> pb.ContainerSpec:
    """The `flock run` options a create body stands for (the reverse of create_body)."""
    host = body.get("HostConfig") or {}
    ports = [f"{b.get('HostPort', '')}:{key.removesuffix('/tcp')}"
             for key, bound in (host.get("PortBindings") or {}).items() for b in bound or []]
    return pb.ContainerSpec(
        image=str(body.get("Image") or ""), cmd=[str(c) for c in body.get("Cmd") or []],
        env=[str(e) for e in body.get("Env") or []], memory=int(host.get("Memory") or 0),
        cpus=int(host.get("NanoCpus") or 0) / 1e9, labels=body.get("Labels") or {},
        ports=ports)


def job_message(job: Job) -> pb.Job:
    host = job.body.get("HostConfig") or {}
    volumes = [*(host.get("Binds") or []), *(job.body.get("Volumes") or {})]
    message = pb.Job(
        name=job.name, schedule=job.schedule, time_zone=job.time_zone,
        concurrency=job.concurrency, history=job.history, suspended=job.suspended,
        created=job.created, spec=spec_of(job.body),
        volumes=volumes, body=json.dumps(job.body, sort_keys=True))
    if job.deadline is not None:
        message.deadline = job.deadline
    return message


def run_message(run: Run) -> pb.JobRun:
    message = pb.JobRun(
        job=run.job, scheduled=run.scheduled, started=run.started or 0.0, node=run.node or "",
        container=run.container or "", name=run.name or "", finished=run.finished or 0.0,
        result=run.result, reason=run.reason or "")
    if run.exit_code is not None:
        message.exit_code = run.exit_code
    return message


def status_message(status: JobStatus) -> pb.JobStatus:
    message = pb.JobStatus(job=job_message(status.job), next_run=status.next_run or 0.0)
    if status.last is not None:
        message.last.CopyFrom(run_message(status.last))
    return message
