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

from tests.support.etcd import Etcd, have_etcd
from tests.support.procs import Agent, Manager, wait_for

pytestmark = [pytest.mark.skipif(not have_etcd(), reason="etcd is not installed")]

PREFIX = "/cronsurface"


def replicated(name: str, folder, url: str) -> Manager:
    manager = Manager(name, folder, url, extra=["--replication", "--replication-ttl", "2s"])
    manager.args[1:1] = ["--advertise", f"127.0.0.1:{manager.port}"]
    return manager


@pytest.fixture
def ha(tmp_path):
    etcd = Etcd(tmp_path / "etcd").start()
    url = etcd.url(PREFIX)
    agent = Agent("n1", tmp_path, url, ttl="60s").start()
    managers = [replicated(f"m{i}", tmp_path, url).start() for i in (1, 2)]
    try:
        for manager in managers:
            wait_for(lambda m=manager: list(m.nodes().values()) == ["Healthy"], 30,
                     f"{manager.name} to see the node")
        primary = wait_for(lambda: next((m for m in managers
                                         if m.role().get("Role") == "primary"), None), 15,
                           "a primary")
        primary.import_busybox()
        replica = next(m for m in managers if m is not primary)
        yield etcd, primary, replica
    finally:
        for manager in managers:
            manager.stop()
        agent.cleanup()
        etcd.stop()


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
