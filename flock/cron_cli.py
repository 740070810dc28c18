"""`flock cron create|ls|inspect|rm|suspend|resume|run|history`: scheduled containers
through the manager's ClusterService (manager/api/grpc.py, the cron RPCs).

A job's run options are `flock run`'s (cluster_cli.add_run_options) plus `-v`, so a
command line that works with `flock run` works as a job. Listings print a table, or
with `--format json` a JSON list for scripts; `inspect` prints the job as JSON there.
A refusal is printed with what to do about it, and the command exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Callable

# Before gRPC loads, as in cluster_cli: else its C core prints each failed TLS handshake
# above the message that says what to do about it.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import grpc  # noqa: E402
from google.protobuf.json_format import MessageToDict  # noqa: E402

from flock import client  # noqa: E402
from flock.cluster_cli import _command, _json, add_run_options, spec_from_args  # noqa: E402
from flock.common.durations import parse_duration  # noqa: E402
from flock.common.table import print_table  # noqa: E402
from flock.docker_compat.humanize import bytes_size, human_duration  # noqa: E402
from flock.protos import cluster_pb2 as pb  # noqa: E402

LIST_HEADERS = ["NAME", "SCHEDULE", "NEXT RUN", "LAST RESULT", "SUSPENDED"]
HISTORY_HEADERS = ["SCHEDULED", "STARTED", "NODE", "CONTAINER", "EXIT CODE", "DURATION",
                   "RESULT"]
# What to do next, by the manager's answer; its message says what was wrong.
HINTS = {
    grpc.StatusCode.NOT_FOUND: "`flock cron ls` lists the jobs",
    grpc.StatusCode.ALREADY_EXISTS: "choose another name, or remove the job first with "
                                    "`flock cron rm NAME`",
    grpc.StatusCode.INVALID_ARGUMENT: "see `flock cron create --help` and docs/cron.md",
    grpc.StatusCode.FAILED_PRECONDITION: "`flock explain` with the same options shows "
                                         "what each node lacks",
}


def register(commands: argparse._SubParsersAction) -> None:
    cron = commands.add_parser("cron", help="scheduled containers, run once per scheduled "
                                            "time across the cluster")
    verbs = cron.add_subparsers(dest="cron_command", metavar="COMMAND")
    verbs.required = True
    conn, fmt = client.command_parents()

    create = verbs.add_parser("create", parents=[conn, fmt],
                              help="add a job: each scheduled time runs IMAGE once")
    create.add_argument("job", metavar="NAME", help="the job's name; runs are NAME-<UTC time>")
    create.add_argument("--schedule", required=True, metavar="SPEC",
                        help='"MIN HOUR DOM MON DOW", with a leading SECONDS field, '
                             '@hourly/@daily/@weekly/@monthly/@yearly, or "@every 30s"')
    create.add_argument("--time-zone", default="", metavar="TZ",
                        help="IANA time zone the schedule is read in (default UTC)")
    create.add_argument("--concurrency", choices=["allow", "forbid", "replace"], default="",
                        help="while the previous run still runs: start anyway (allow, "
                             "default), skip this run (forbid), or stop it first (replace)")
    create.add_argument("--deadline", default=None, metavar="DURATION",
                        help="how late a run may still start (5m); runs missed longer than "
                             "this (a failover, a manager down) are recorded as missed")
    create.add_argument("--history", type=int, default=None, metavar="N",
                        help="finished runs kept, their containers included (default 10)")
    create.add_argument("--suspend", action="store_true", help="create it suspended")
    add_run_options(create)
    create.add_argument("-v", "--volume", action="append", default=[],
                        metavar="SRC:DEST[:MODE]", help="bind mount or volume, as docker run")
    create.add_argument("image")
    create.add_argument("cmd", nargs=argparse.REMAINDER, help="command and arguments")
    create.set_defaults(func=_cron(create_job), name="")

    ls = verbs.add_parser("ls", parents=[conn, fmt], help="list the jobs")
    ls.set_defaults(func=_cron(list_jobs))

    for verb, what, work in (
            ("inspect", "show a job", inspect_job),
            ("rm", "remove a job (its finished runs' containers stay until removed)",
             remove_job),
            ("suspend", "stop scheduling a job's runs", suspend_job),
            ("resume", "schedule a suspended job's runs again", resume_job),
            ("run", "start one run now, whatever the schedule", run_job),
            ("history", "a job's runs, newest first", job_history)):
        parser = verbs.add_parser(verb, parents=[conn, fmt], help=what)
        parser.add_argument("job", metavar="NAME")
        parser.set_defaults(func=_cron(work))


def _cron(work: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """The manager's refusal with what to do next (exit 1); connection trouble and bad
    flags as every cluster command reports them."""

    def run(args: argparse.Namespace) -> int:
        try:
            return work(args)
        except grpc.RpcError as err:
            hint = HINTS.get(err.code())
            if hint is None or "send changes to" in (err.details() or ""):
                raise  # no hint, or one of its own: a replica names the primary
            print(f"flock cron {args.cron_command}: {err.details()}\n{hint}", file=sys.stderr)
            return 1

    return _command(run)


def when(epoch: float) -> str:
    """A moment in UTC, to the second; "-" for none."""
    if not epoch:
        return "-"
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}Z"


def took(run: pb.JobRun, now: float) -> str:
    """How long a run took (or has taken so far): tenths of a second under a minute."""
    if not run.started:
        return "-"
    seconds = (run.finished or now) - run.started
    return f"{seconds:.1f}s" if seconds < 60 else human_duration(seconds)


def last_result(run: pb.JobRun, now: float) -> str:
    if not run.result:
        return "-"
    at = run.finished or run.started or run.scheduled
    text = run.result
    if run.HasField("exit_code") and run.result != "running":
        text += f" ({run.exit_code})"
    return f"{text} {human_duration(now - at)} ago" if at else text


def history_row(run: pb.JobRun, now: float) -> list[str]:
    result = run.result + (f" ({run.reason})" if run.reason else "")
    return [when(run.scheduled), when(run.started), run.node or "-",
            run.name or run.container[:12] or "-",
            str(run.exit_code) if run.HasField("exit_code") else "-", took(run, now), result]


def _dict(message) -> dict:
    found = MessageToDict(message, preserving_proto_field_name=True,
                          always_print_fields_with_no_presence=True)
    job = found.get("job", found)
    if isinstance(job.get("body"), str) and job["body"]:
        job["body"] = json.loads(job["body"])  # an object for scripts, not a string
    return found


def _now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


def create_job(args: argparse.Namespace) -> int:
    job = pb.Job(name=args.job, schedule=args.schedule, time_zone=args.time_zone,
                 concurrency=args.concurrency, suspended=args.suspend,
                 spec=spec_from_args(args), volumes=args.volume)
    if args.history is not None:
        if args.history < 1:
            raise client.ClientError(f"invalid --history {args.history}: keep at least 1 run")
        job.history = args.history
    if args.deadline is not None:
        try:
            job.deadline = parse_duration(args.deadline)
        except ValueError as exc:
            raise client.ClientError(f"--deadline: {exc}") from None
    status = client.stub(args).CreateJob(pb.CreateJobRequest(job=job), timeout=60)
    if args.format == "json":
        print(json.dumps([_dict(status)], indent=2))
        return 0
    state = "suspended" if status.job.suspended else f"next run {when(status.next_run)}"
    print(f"{status.job.name}: created, {state}")
    return 0


def list_jobs(args: argparse.Namespace) -> int:
    jobs = list(client.stub(args).ListJobs(pb.ListJobsRequest(), timeout=30).jobs)
    if args.format == "json":
        print(json.dumps([_dict(s) for s in jobs], indent=2))
        return 0
    now = _now()
    print_table(LIST_HEADERS, [
        [s.job.name, s.job.schedule + ("" if s.job.time_zone in ("", "UTC")
                                       else f" ({s.job.time_zone})"),
         when(s.next_run), last_result(s.last, now), "yes" if s.job.suspended else "no"]
        for s in jobs])
    return 0


def describe(status: pb.JobStatus, now: float) -> list[tuple[str, str]]:
    """The job as `KEY: value` lines for people; --format json has every field."""
    job, spec = status.job, status.job.spec
    rows = [("Name", job.name), ("Schedule", job.schedule),
            ("Time zone", job.time_zone or "UTC"), ("Concurrency", job.concurrency or "allow"),
            ("Deadline", human_duration(job.deadline) if job.HasField("deadline") else "none"),
            ("History", str(job.history)), ("Suspended", "yes" if job.suspended else "no"),
            ("Created", when(job.created)), ("Next run", when(status.next_run)),
            ("Last result", last_result(status.last, now)), ("Image", spec.image),
            ("Command", " ".join(spec.cmd) or "(the image's)")]
    rows += [("Env", e) for e in spec.env]
    rows += [("Volume", v) for v in job.volumes]
    if spec.memory:
        rows.append(("Memory", bytes_size(spec.memory)))
    if spec.cpus:
        rows.append(("CPUs", f"{spec.cpus:g}"))
    rows += [("Label", f"{k}={v}") for k, v in sorted(spec.labels.items())]
    return rows


def inspect_job(args: argparse.Namespace) -> int:
    status = client.stub(args).InspectJob(pb.JobRef(name=args.job), timeout=30)
    if args.format == "json":
        print(json.dumps([_dict(status)], indent=2))
        return 0
    for key, value in describe(status, _now()):
        print(f"{key + ':':<13}{value}")
    return 0


def remove_job(args: argparse.Namespace) -> int:
    reply = client.stub(args).RemoveJob(pb.JobRef(name=args.job), timeout=30)
    print(reply.name)
    return 0


def _switch(args: argparse.Namespace, call: str) -> int:
    status = getattr(client.stub(args), call)(pb.JobRef(name=args.job), timeout=30)
    if args.format == "json":
        print(json.dumps([_dict(status)], indent=2))
    elif status.job.suspended:
        print(f"{status.job.name}: suspended")
    else:
        print(f"{status.job.name}: active, next run {when(status.next_run)}")
    return 0


def suspend_job(args: argparse.Namespace) -> int:
    return _switch(args, "SuspendJob")


def resume_job(args: argparse.Namespace) -> int:
    return _switch(args, "ResumeJob")


def run_job(args: argparse.Namespace) -> int:
    run = client.stub(args).RunJob(pb.JobRef(name=args.job), timeout=300)
    if args.format == "json":
        _json([run])
        return 0
    print_table(HISTORY_HEADERS, [history_row(run, _now())])
    return 0 if run.result in ("running", "succeeded") else 1


def job_history(args: argparse.Namespace) -> int:
    runs = list(client.stub(args).JobHistory(pb.JobRef(name=args.job), timeout=30).runs)
    if args.format == "json":
        _json(runs)
        return 0
    now = _now()
    print_table(HISTORY_HEADERS, [history_row(r, now) for r in runs])
    return 0
