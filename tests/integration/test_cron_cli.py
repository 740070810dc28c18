"""`flock cron` end to end: the real `flock` command as a subprocess with nothing but
DOCKER_HOST, a real manager keeping its jobs in its state folder (no etcd), two agents on
real engines; the ClusterService's cron calls and their gRPC codes; the Jobs panel of
the cluster page in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import grpc
import pytest

from flock.protos import cluster_pb2 as pb
from tests.support import browser as chromium
from tests.support.cluster import Cluster, unique_name, wait_for

pytestmark = pytest.mark.docker

MIB = 1 << 20
MOMENT = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
NOT_FOUND_HINT = "`flock cron ls` lists the jobs"


@pytest.fixture(scope="module")
def cluster(engine_pair, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cron")
    with Cluster(engine_pair, folder, ["cron-a", "cron-b"], manager_options={
            "grpc_addr": "127.0.0.1:0", "state_dir": str(folder / "manager")}) as made:
        before = made.container_ids()
        yield made
        # The engines are shared with later modules: a run that was being placed when
        # its job was removed may land after the test's own cleanup; take those too,
        # until a pass finds nothing new.
        while True:
            time.sleep(1)
            left = made.container_ids()
            if all(left[k] <= before[k] for k in left):
                break
            made.remove_new_containers(before)


@pytest.fixture
def jobs(cluster, names, service):
    """Unique job names; the jobs a test made are removed after it (before `names`
    removes their runs' containers)."""
    made: list[str] = []

    def new(prefix: str = "job") -> str:
        made.append(unique_name(prefix))
        return made[-1]

    yield new
    for name in made:
        try:
            service.RemoveJob(pb.JobRef(name=name), timeout=30)
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()


def flock(cluster, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOCK_HOST", "DOCKER_HOST")}
    env["DOCKER_HOST"] = cluster.url  # what docker uses: the commands need nothing else
    return subprocess.run([sys.executable, "-m", "flock", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def ok(cluster, *args: str) -> str:
    done = flock(cluster, *args)
    assert done.returncode == 0, f"flock {' '.join(args)}: {done.stderr}"
    return done.stdout


def listed(cluster) -> dict[str, dict]:
    return {s["job"]["name"]: s for s in json.loads(ok(cluster, "cron", "ls", "--format",
                                                        "json"))}


def history(cluster, name: str) -> list[dict]:
    return json.loads(ok(cluster, "cron", "history", name, "--format", "json"))


def table(text: str) -> tuple[str, list[str]]:
    header, *rows = text.splitlines()
    return header, rows


def columns(header: str) -> list[str]:
    return re.split(r"\s{2,}", header.strip())


def test_every_second_job_runs_on_schedule_and_says_so(cluster, jobs, tmp_path):
    name = jobs("tick")
    out = tmp_path / "out"
    out.mkdir()
    made = ok(cluster, "cron", "create", name, "--schedule", "@every 1s", "--history", "3",
              "-e", "constraint:node==cron-b", "-m", "32m", "-l", "team=ops",
              "-v", f"{out}:/out", "busybox", "sh", "-c", "echo ran >> /out/log")
    assert re.fullmatch(rf"{name}: created, next run {MOMENT}\n", made)
    log = out / "log"
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) >= 5, 30,
             "five runs writing through the bind mount")

    runs = history(cluster, name)
    finished = [r for r in runs if r["result"] not in ("running", "claimed")]
    assert 3 <= len(finished) <= 3 + 1  # --history 3, and one may finish meanwhile
    scheduled = [r["scheduled"] for r in runs]
    assert scheduled == sorted(scheduled, reverse=True) and len(set(scheduled)) == len(runs)
    for run in finished:
        assert (run["node"], run["exit_code"], run["result"]) == ("cron-b", 0, "succeeded")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(run["scheduled"]))
        assert run["name"] == f"{name}-{stamp}"
        assert run["started"] >= run["scheduled"] and run["finished"] >= run["started"]
    # The run is the container `docker run -m 32m -l team=ops -v ...` would have made.
    shown = json.loads(cluster.docker("inspect", finished[0]["container"]).stdout)[0]
    assert shown["HostConfig"]["Memory"] == 32 * MIB
    assert shown["HostConfig"]["Binds"] == [f"{out}:/out"]
    assert shown["Config"]["Labels"]["team"] == "ops"
    assert cluster.node_of(finished[0]["container"]) == "cron-b"

    header, rows = table(ok(cluster, "cron", "history", name))
    assert columns(header) == ["SCHEDULED", "STARTED", "NODE", "CONTAINER", "EXIT CODE",
                               "DURATION", "RESULT"]
    assert any(re.fullmatch(rf"{MOMENT}\s+{MOMENT}\s+cron-b\s+{name}-\S+\s+0\s+\d+\.\ds\s+"
                            r"succeeded", row) for row in rows), rows

    header, rows = table(ok(cluster, "cron", "ls"))
    assert columns(header) == ["NAME", "SCHEDULE", "NEXT RUN", "LAST RESULT", "SUSPENDED"]
    row = next(r for r in rows if r.startswith(name + " "))
    # the newest run: ended, running, or claimed and being placed at this very moment
    assert re.fullmatch(rf"{name}\s+@every 1s\s+{MOMENT}\s+(succeeded \(0\)|running|claimed) "
                        r".*\s+no", row), row

    status = listed(cluster)[name]
    assert set(status) == {"job", "next_run", "last"} and status["next_run"] > 0
    job = status["job"]
    assert (job["schedule"], job["time_zone"], job["concurrency"], job["history"],
            job["suspended"], job["volumes"]) == ("@every 1s", "UTC", "allow", 3, False,
                                                  [f"{out}:/out"])
    assert "deadline" not in job  # none given: no catch-up limit
    assert job["spec"]["image"] == "busybox" and job["spec"]["memory"] == str(32 * MIB)
    assert job["spec"]["env"] == ["constraint:node==cron-b"]
    assert job["body"]["HostConfig"]["Memory"] == 32 * MIB  # an object, not a string
    assert job["body"]["Cmd"] == ["sh", "-c", "echo ran >> /out/log"]
    [inspected] = json.loads(ok(cluster, "cron", "inspect", name, "--format", "json"))
    assert inspected["job"] == {**job, "body": inspected["job"]["body"]}
    text = ok(cluster, "cron", "inspect", name)
    assert re.search(r"^Schedule:\s+@every 1s$", text, re.M)
    assert re.search(rf"^Volume:\s+{re.escape(str(out))}:/out$", text, re.M)

    # Suspended: no more runs, and the listing says so; resumed: runs again.
    assert ok(cluster, "cron", "suspend", name) == f"{name}: suspended\n"
    row = next(r for r in table(ok(cluster, "cron", "ls"))[1] if r.startswith(name + " "))
    assert re.fullmatch(rf"{name}\s+@every 1s\s+-\s+.*\s+yes", row), row
    time.sleep(1.5)  # a run fired just before the suspension may still be writing
    lines = len(log.read_text().splitlines())
    time.sleep(3)
    assert len(log.read_text().splitlines()) == lines
    assert re.fullmatch(rf"{name}: active, next run {MOMENT}\n",
                        ok(cluster, "cron", "resume", name))
    wait_for(lambda: len(log.read_text().splitlines()) > lines, 15, "a run after resume")

    assert ok(cluster, "cron", "rm", name) == f"{name}\n"
    assert name not in listed(cluster)
    gone = flock(cluster, "cron", "inspect", name)
    assert gone.returncode == 1 and gone.stdout == ""
    assert gone.stderr.startswith("flock cron inspect: ") and name in gone.stderr
    assert NOT_FOUND_HINT in gone.stderr


def test_the_backup_job_of_the_docs(cluster, jobs, tmp_path):
    """docs/cron.md's and the README's example, as written there: a tar of a named volume
    on one node into a bind mount, run once now."""
    name, volume = jobs("backup"), jobs("dbdata")
    cluster.docker("run", "--rm", "-e", "constraint:node==cron-a", "-v", f"{volume}:/data",
                   "busybox", "sh", "-c", "echo rows > /data/table")
    backups = tmp_path / "backups"
    backups.mkdir()
    try:
        ok(cluster, "cron", "create", name, "--schedule", "30 1 * * *", "--time-zone",
           "Europe/Berlin", "--concurrency", "forbid", "--deadline", "2h", "--history", "14",
           "-e", "constraint:node==cron-a", "-v", f"{volume}:/data:ro",
           "-v", f"{backups}:/backup", "-m", "256m", "busybox", "sh", "-c",
           "tar cf /backup/dbdata-$(date -u +%Y%m%dT%H%M%SZ).tar -C /data .")
        [status] = [s for s in json.loads(ok(cluster, "cron", "ls", "--format", "json"))
                    if s["job"]["name"] == name]
        # 01:30 in Berlin is 00:30Z in winter, 23:30Z the day before in summer.
        assert time.strftime("%H:%M:%S", time.gmtime(status["next_run"])) in (
            "00:30:00", "23:30:00")
        ok(cluster, "cron", "run", name)
        [run] = wait_for(lambda: (runs := history(cluster, name))[0]["result"] != "running"
                         and runs, 30, "the backup's end")
        assert (run["result"], run["exit_code"], run["node"]) == ("succeeded", 0, "cron-a")
        [tarball] = backups.iterdir()
        listing = subprocess.run(["tar", "tf", str(tarball)], capture_output=True,
                                 text=True, check=True).stdout.split()
        assert "./table" in listing
    finally:
        ok(cluster, "cron", "rm", name)
        cluster.docker("volume", "rm", "-f", volume, check=False)


def test_run_now_and_a_failing_command(cluster, jobs):
    name = jobs("fails")
    ok(cluster, "cron", "create", name, "--schedule", "@yearly", "--suspend",
       "-e", "constraint:node==cron-a", "busybox", "sh", "-c", "exit 3")
    header, rows = table(ok(cluster, "cron", "run", name))
    assert columns(header)[0] == "SCHEDULED" and len(rows) == 1
    assert re.match(rf"{MOMENT}\s+{MOMENT}\s+cron-a\s+{name}-\d{{8}}T\d{{6,9}}Z\s", rows[0])

    def ended():
        runs = history(cluster, name)
        return runs[0]["result"] == "failed" and runs
    [run] = wait_for(ended, 30, "the run's end recorded")
    assert (run["exit_code"], run["node"]) == (3, "cron-a")
    row = next(r for r in table(ok(cluster, "cron", "ls"))[1] if r.startswith(name + " "))
    assert re.fullmatch(rf"{name}\s+@yearly\s+-\s+failed \(3\) .* ago\s+yes", row), row
    [again] = json.loads(ok(cluster, "cron", "run", name, "--format", "json"))
    assert again["job"] == name and again["node"] == "cron-a" and again["container"]


def _follow(cluster, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOCK_HOST", "DOCKER_HOST")}
    env["DOCKER_HOST"] = cluster.url
    return subprocess.Popen(list(args), stdout=subprocess.PIPE, text=True, env=env)


def test_runs_are_events_of_type_cron(cluster, jobs):
    """What docs/cron.md shows: `docker events --filter type=cron` and `flock events`
    follow the runs, the job's whole name as the actor."""
    name = jobs("seen-by-events")
    ok(cluster, "cron", "create", name, "--schedule", "@yearly", "--suspend", "busybox", "true")
    followers = [_follow(cluster, "docker", "events", "--filter", "type=cron", "--format",
                         "{{json .}}"),
                 _follow(cluster, sys.executable, "-m", "flock", "events")]
    try:
        time.sleep(1.5)  # the streams are open (neither prints anything before an event)
        ok(cluster, "cron", "run", name)
        wait_for(lambda: history(cluster, name)[0]["result"] == "succeeded", 20, "the end")
        time.sleep(0.5)
    finally:
        shown = []
        for follower in followers:
            follower.terminate()
            shown.append(follower.communicate(timeout=10)[0])
    events = [json.loads(line) for line in shown[0].splitlines()]
    mine = [(e["Action"], e["Actor"]["Attributes"]["node"]) for e in events
            if e["Actor"]["ID"] == name]
    assert [action for action, _ in mine] == ["start", "succeeded"], events
    assert all(e["Type"] == "cron" for e in events) and mine[0][1] in ("cron-a", "cron-b")
    lines = [line for line in shown[1].splitlines() if " cron " in line]
    assert [line.split(" ", 1)[1] for line in lines if name in line] == [
        f"cron start {name} (node={mine[0][1]})", f"cron succeeded {name} (node={mine[0][1]})"]


BAD = [  # (what, options before the image, image, message, hint)
    ("a field out of range", ["--schedule", "* * 61 * *"], "busybox",
     "day of month", "flock cron create --help"),
    ("too few fields", ["--schedule", "* * *"], "busybox", "invalid schedule", "docs/cron.md"),
    ("an unknown zone", ["--schedule", "@daily", "--time-zone", "Mars/Base"], "busybox",
     'unknown time zone "Mars/Base"', "flock cron create --help"),
    ("rules no node meets", ["--schedule", "@daily", "-e", "constraint:node==nowhere"],
     "busybox", "node==nowhere", "`flock explain` with the same options"),
    ("an image on no node", ["--schedule", "@daily"], "no-such-image:1",
     "no-such-image", "`flock explain` with the same options"),
    ("a bad rule", ["--schedule", "@daily", "-e", "constraint:node==/[/"], "busybox",
     "node==/[/", "flock cron create --help"),
    ("a volume without a destination", ["--schedule", "@daily", "-v", "data"], "busybox",
     'invalid volume "data"', "flock cron create --help"),
    ("a negative deadline", ["--schedule", "@daily", "--deadline=-5s"], "busybox",
     "--deadline: invalid duration '-5s': negative", ""),
    ("no history", ["--schedule", "@daily", "--history", "0"], "busybox",
     "invalid --history 0: keep at least 1 run", ""),
]


@pytest.mark.parametrize(("what", "options", "image", "message", "hint"), BAD,
                         ids=[case[0] for case in BAD])
def test_bad_input_is_refused_and_nothing_is_kept(cluster, jobs, what, options, image,
                                                  message, hint):
    name = jobs("bad")
    done = flock(cluster, "cron", "create", name, *options, image, "true")
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("flock cron") and message in done.stderr, done.stderr
    assert hint in done.stderr
    assert name not in listed(cluster)
    assert not [c for c in cluster.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode()
                .split() if name in c]


def test_a_taken_name_and_an_unknown_choice(cluster, jobs):
    name = jobs("twice")
    ok(cluster, "cron", "create", name, "--schedule", "@daily", "--suspend", "busybox", "true")
    done = flock(cluster, "cron", "create", name, "--schedule", "@hourly", "busybox", "true")
    assert done.returncode == 1 and "already exists" in done.stderr
    assert "`flock cron rm NAME`" in done.stderr
    assert listed(cluster)[name]["job"]["schedule"] == "@daily"  # the first one, untouched
    done = flock(cluster, "cron", "create", name, "--schedule", "@daily", "--concurrency",
                 "sometimes", "busybox", "true")
    assert done.returncode == 2 and "invalid choice: 'sometimes'" in done.stderr


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def _job(name: str, **fields) -> pb.CreateJobRequest:
    options = {"schedule": "@daily", "spec": pb.ContainerSpec(image="busybox", cmd=["true"]),
               **fields}
    return pb.CreateJobRequest(job=pb.Job(name=name, **options))


@pytest.mark.parametrize(("fields", "code", "text"), [
    ({"schedule": "*/0 * * * *"}, "INVALID_ARGUMENT", "schedule"),
    ({"time_zone": "Nowhere/At_All"}, "INVALID_ARGUMENT", "time zone"),
    ({"concurrency": "sometimes"}, "INVALID_ARGUMENT", "concurrency"),
    ({"deadline": -1.0}, "INVALID_ARGUMENT", "deadline"),
    ({"spec": pb.ContainerSpec()}, "INVALID_ARGUMENT", "image"),
    ({"spec": pb.ContainerSpec(image="busybox", env=["constraint:node==nowhere"])},
     "FAILED_PRECONDITION", "nowhere"),
    ({"spec": pb.ContainerSpec(image="no-such-image:2")}, "FAILED_PRECONDITION",
     "no-such-image"),
])
def test_create_refusals_have_their_grpc_codes(service, jobs, fields, code, text):
    name = jobs("grpc")
    got, details = _code(lambda: service.CreateJob(_job(name, **fields), timeout=30))
    assert (got, text in details) == (grpc.StatusCode[code], True), details
    assert name not in [s.job.name for s in service.ListJobs(pb.ListJobsRequest()).jobs]


def test_each_call_on_a_missing_job_is_not_found_and_a_taken_name_already_exists(
        service, jobs):
    ref = pb.JobRef(name="no-such-job")
    for call in (service.InspectJob, service.RemoveJob, service.SuspendJob,
                 service.ResumeJob, service.RunJob, service.JobHistory):
        got, details = _code(lambda call=call: call(ref, timeout=30))
        assert got == grpc.StatusCode.NOT_FOUND and "no-such-job" in details
    name = jobs("grpc")
    made = service.CreateJob(_job(name, suspended=True, history=2), timeout=30)
    assert (made.job.name, made.job.suspended, made.job.history, made.next_run) == (
        name, True, 2, 0)
    assert made.job.created > 0 and json.loads(made.job.body)["Image"] == "busybox"
    got, details = _code(lambda: service.CreateJob(_job(name), timeout=30))
    assert got == grpc.StatusCode.ALREADY_EXISTS and name in details


# ------------------------------------------------------------------ the page
READ_JOBS = """
return Array.from(document.querySelectorAll("tr.job")).map(function (row) {
  return {name: row.dataset.job, result: row.dataset.result,
          cells: Array.from(row.cells).map(function (c) { return c.textContent; })};
});
"""


def test_the_page_has_a_jobs_panel_with_next_run_and_last_result(cluster, jobs, browser,
                                                                  tmp_path):
    name = jobs("page")
    driver = browser.driver
    driver.get(f"http://127.0.0.1:{cluster.port}/ui/")
    wait_for(lambda: driver.find_elements("css selector", "section.node"), 15, "the nodes")
    ok(cluster, "cron", "create", name, "--schedule", "@yearly", "--suspend", "-e",
       "constraint:node==cron-a", "busybox", "true")

    def row(result: str = ""):
        found = {j["name"]: j for j in driver.execute_script(READ_JOBS)}.get(name)
        return found if found and found["result"] == result else None
    shown = wait_for(row, 10, "the new job on the page")
    assert shown["cells"] == [name, "@yearly", "suspended", "never ran"]
    assert driver.find_element("id", "jobs").is_displayed()
    ok(cluster, "cron", "run", name)
    shown = wait_for(lambda: row("succeeded"), 20, "the run's success on the page")
    assert shown["cells"] == [name, "@yearly", "suspended", "succeeded (0)"]
    driver.execute_script("document.getElementById('jobs').scrollIntoView()")
    shot = tmp_path / "jobs.png"
    shot.write_bytes(driver.get_screenshot_as_png())
    print(f"the Jobs panel: {shot}")
    _, colours = chromium.png_colours(shot.read_bytes())
    assert (0xdc, 0xfc, 0xe7) in colours, f"no green 'succeeded' badge in {shot}"
    status, snap, _ = cluster.api("GET", "/ui/api/cluster")
    entry = next(j for j in snap["jobs"] if j["name"] == name)
    assert (entry["last"]["node"], entry["last"]["exit_code"]) == ("cron-a", 0)

    # Resuming changes no container: the stream redraws for the job alone.
    ok(cluster, "cron", "resume", name)
    shown = wait_for(lambda: (found := row("succeeded")) and found["cells"][2] != "suspended"
                     and found, 10, "the next run on the page")
    assert re.fullmatch(MOMENT, shown["cells"][2]) and shown["cells"][2].endswith("01-01 "
                                                                                 "00:00:00Z")
