"""`flock cron` against replicated managers on a real etcd (processes: etcd, two
managers with --replication, one exec agent): a job created through the primary is in
etcd, so the replica lists and inspects it too; a change sent to the replica is refused
with the primary's address, and nothing is made."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.etcd import have_etcd
from tests.support.procs import Manager, wait_for
from tests.support.replicated import ha_cluster, primary

pytestmark = [pytest.mark.skipif(not have_etcd(), reason="etcd is not installed")]

PREFIX = "/cronsurface"


@pytest.fixture
def ha(tmp_path):
    with ha_cluster(tmp_path, PREFIX, "2s", agents=1, managers=2) as (etcd, _, managers):
        leader = wait_for(lambda: primary(managers), 15, "a primary")
        leader.import_busybox()
        replica = next(m for m in managers if m is not leader)
        yield etcd, leader, replica


def flock(manager: Manager, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("FLOCK_HOST", "DOCKER_HOST")}
    env["DOCKER_HOST"] = f"tcp://{manager.addr}"
    return subprocess.run([sys.executable, "-m", "flock", *args], capture_output=True,
                          text=True, timeout=60, env=env)


def test_jobs_are_shared_through_etcd_and_changes_go_to_the_primary(ha):
    etcd, primary, replica = ha
    made = flock(primary, "cron", "create", "nightly", "--schedule", "30 1 * * *",
                 "--time-zone", "Europe/Berlin", "--deadline", "2h", "busybox", "true")
    assert made.returncode == 0, made.stderr
    assert f"{PREFIX}/_cron/jobs/nightly" in etcd.keys(f"{PREFIX}/_cron/jobs/")

    def listed_on_replica():
        done = flock(replica, "cron", "ls", "--format", "json")
        return done.returncode == 0 and json.loads(done.stdout)
    [status] = wait_for(listed_on_replica, 15, "the job listed by the replica")
    assert (status["job"]["name"], status["job"]["time_zone"], status["job"]["deadline"]) == (
        "nightly", "Europe/Berlin", 7200)
    shown = flock(replica, "cron", "inspect", "nightly")
    assert shown.returncode == 0 and "Time zone:   Europe/Berlin" in shown.stdout

    for args in (["create", "other", "--schedule", "@daily", "busybox", "true"],
                 ["suspend", "nightly"], ["run", "nightly"], ["rm", "nightly"]):
        refused = flock(replica, "cron", *args)
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.strip() == (
            f"flock cron: this manager is a replica: send changes to the primary "
            f"(Docker API {primary.addr})"), refused.stderr
    assert list(etcd.keys(f"{PREFIX}/_cron/jobs/")) == [f"{PREFIX}/_cron/jobs/nightly"]
    assert flock(primary, "cron", "history", "nightly", "--format", "json").stdout.strip() \
        == "[]"
