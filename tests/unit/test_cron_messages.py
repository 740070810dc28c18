"""The pure parts of `flock cron`: the ClusterService's job messages both ways (a job's
options -> the Docker create body `docker run` sends -> the options again), the cron
refusals' gRPC codes, and how the CLI words times, durations and results."""

from __future__ import annotations

import json

import grpc
import pytest

from flock.cron_cli import history_row, last_result, took, when
from flock.manager.api.cron_messages import (
    cron_code,
    job_from_message,
    job_message,
    run_message,
    with_volumes,
)
from flock.manager.api.grpc import create_body
from flock.manager.cron import errors
from flock.manager.cron.jobs import Job
from flock.manager.cron.runs import Run
from flock.protos import cluster_pb2 as pb

MIB = 1 << 20


@pytest.mark.parametrize(("error", "code"), [
    (errors.InvalidSchedule, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.UnknownTimeZone, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.InvalidJob, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.JobExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.NoSuchJob, grpc.StatusCode.NOT_FOUND),
    (errors.Unplaceable, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ImageMissing, grpc.StatusCode.FAILED_PRECONDITION),
])
def test_each_refusal_has_its_code(error, code):
    assert cron_code(error("why")) == code


def test_volumes_as_the_docker_cli_sends_them():
    # docker/cli opts/volume parsing: SRC:DEST[:MODE] binds, a lone /DEST an anonymous
    # volume in Config.Volumes.
    body = with_volumes({"Image": "busybox", "HostConfig": {}},
                        ["data:/data:ro", "/srv/backups:/backup", "/scratch"])
    assert body["HostConfig"]["Binds"] == ["data:/data:ro", "/srv/backups:/backup"]
    assert body["Volumes"] == {"/scratch": {}}
    assert with_volumes({"Image": "busybox"}, []) == {"Image": "busybox"}


@pytest.mark.parametrize("text", ["relative", "", ":/data", "/data:"])
def test_a_bad_volume_is_named(text):
    with pytest.raises(errors.InvalidJob, match="invalid volume"):
        with_volumes({}, [text])


def test_a_job_goes_in_and_comes_back_with_its_body():
    spec = pb.ContainerSpec(image="busybox", cmd=["sh", "-c", "tar c /data"],
                            env=["constraint:node==db-1", "K=V"], memory=64 * MIB, cpus=0.5,
                            labels={"team": "ops"}, ports=["8080:80", "53:53/udp"])
    message = pb.Job(name="backup", schedule="30 1 * * *", time_zone="Europe/Berlin",
                     concurrency="forbid", deadline=7200, history=14, spec=spec,
                     volumes=["/srv/backups:/backup"])
    job = job_from_message(message, with_volumes(create_body(spec), list(message.volumes)))
    assert (job.name, job.schedule, job.time_zone, job.concurrency, job.deadline,
            job.history, job.suspended) == ("backup", "30 1 * * *", "Europe/Berlin",
                                             "forbid", 7200, 14, False)
    assert job.body["HostConfig"] == {
        "Memory": 64 * MIB, "NanoCpus": 500_000_000, "Binds": ["/srv/backups:/backup"],
        "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                         "53/udp": [{"HostIp": "", "HostPort": "53"}]}}
    back = job_message(job)
    assert back.spec == spec and list(back.volumes) == ["/srv/backups:/backup"]
    assert back.deadline == 7200 and json.loads(back.body) == job.body


def test_empty_fields_take_the_jobs_own_defaults():
    job = job_from_message(pb.Job(name="j", schedule="@hourly"), {"Image": "busybox"})
    assert job == Job(name="j", schedule="@hourly", body={"Image": "busybox"})
    back = job_message(job)
    assert not back.HasField("deadline") and back.history == 10 and back.time_zone == "UTC"


def test_a_run_that_never_started_has_no_exit_code():
    missed = run_message(Run(job="j", scheduled=100.0, result="missed", reason="late"))
    assert not missed.HasField("exit_code") and missed.started == 0
    assert history_row(missed, 200.0) == [when(100.0), "-", "-", "-", "-", "-",
                                          "missed (late)"]
    done = run_message(Run(job="j", scheduled=100.0, started=101.0, finished=103.25,
                           node="n1", container="c" * 64, name="j-19700101T000140Z",
                           exit_code=0, result="succeeded"))
    assert done.HasField("exit_code") and done.exit_code == 0
    assert history_row(done, 200.0) == ["1970-01-01 00:01:40Z", "1970-01-01 00:01:41Z", "n1",
                                        "j-19700101T000140Z", "0", "2.2s", "succeeded"]


def test_durations_and_last_results_as_people_read_them():
    running = pb.JobRun(started=100.0, result="running")
    assert took(running, 130.5) == "30.5s" and took(pb.JobRun(), 1.0) == "-"
    assert took(pb.JobRun(started=0.5, finished=180.5), 0) == "3 minutes"
    assert last_result(pb.JobRun(), 10.0) == "-"
    assert last_result(running, 130.0) == "running 30 seconds ago"
    failed = pb.JobRun(started=100.0, finished=110.0, exit_code=3, result="failed")
    assert last_result(failed, 170.0) == "failed (3) About a minute ago"
