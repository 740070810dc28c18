"""Storage and health checks on the exec runtime, driven by the real docker CLI and the
Docker SDK: bind mounts, named and anonymous volumes, tmpfs, a read-only root, health
checks from flags and from the image, and a 501 for what the runtime cannot honour;
then the same through a real manager over a real exec agent.

Texts matched against moby: volume/mounts/validate.go and linux_parser.go (mount
errors), volume/service (in-use), daemon/health.go (health states, timeout output),
daemon/events/filter.go (event=health_status matches by prefix)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import time

import docker
import pytest

from tests.support.exec_runtime import RuntimeProcess, raw, running_runtime
from tests.support.procs import Agent, Manager, free_port, wait_for

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    with running_runtime(tmp_path_factory.mktemp("exec-storage")) as runtime:
        runtime.import_busybox("busybox:latest", 'CMD ["sh"]')
        runtime.import_busybox("checked:latest", 'CMD ["sleep", "600"]',
                               "HEALTHCHECK --interval=1s --retries=1 CMD test -e /tmp/ok")
        yield runtime


def err(result: subprocess.CompletedProcess) -> str:
    return result.stderr.decode()


def events(rt: RuntimeProcess, since: float, *filters: str) -> list[dict]:
    args = [a for f in filters for a in ("--filter", f)]
    out = rt.out("events", "--since", f"{since:.9f}", "--until", f"{time.time():.9f}",
                 *args, "--format", "{{json .}}")
    return [json.loads(line) for line in out.splitlines()]


# --- volumes and binds ------------------------------------------------------------------

def test_named_volume_keeps_data_across_container_removal(rt):
    assert rt.out("volume", "create", "keep") == "keep"
    rt.out("run", "--name", "writer", "-v", "keep:/data", "busybox",
           "sh", "-c", "echo kept > /data/file")
    mounts = json.loads(rt.out("inspect", "-f", "{{json .Mounts}}", "writer"))
    volume = json.loads(rt.out("volume", "inspect", "keep"))[0]
    assert mounts == [{"Type": "volume", "Name": "keep", "Source": volume["Mountpoint"],
                       "Destination": "/data", "Driver": "local", "Mode": "z", "RW": True,
                       "Propagation": ""}]
    assert rt.out("inspect", "-f", "{{json .HostConfig.Binds}}", "writer") == '["keep:/data"]'
    assert (volume["Driver"], volume["Scope"], volume["Name"]) == ("local", "local", "keep")
    rt.docker("rm", "writer")
    assert rt.out("run", "--rm", "-v", "keep:/again", "busybox", "cat", "/again/file") == "kept"
    # -v NAME:/path makes a volume on first use, as the Engine does
    rt.out("run", "--rm", "-v", "fresh-vol:/x", "busybox", "true")
    assert "fresh-vol" in rt.out("volume", "ls", "-q").split()
    rt.docker("volume", "rm", "keep", "fresh-vol")
    assert "keep" not in rt.out("volume", "ls", "-q").split()


def test_volume_in_use_is_refused_and_errors_are_the_engines(rt, client):
    cid = rt.out("create", "-v", "busy:/d", "busybox", "true")
    refused = rt.docker("volume", "rm", "busy", check=False)
    assert refused.returncode == 1
    assert f"remove busy: volume is in use - [{cid}]" in err(refused)
    with pytest.raises(docker.errors.APIError) as caught:
        client.volumes.get("busy").remove(force=True)
    assert caught.value.status_code == 409
    rt.docker("rm", cid)
    rt.docker("volume", "rm", "busy")
    status, _, body = raw(rt.socket, "GET", "/volumes/busy")
    assert (status, json.loads(body)) == (404, {"message": "get busy: no such volume"})
    status, _, body = raw(rt.socket, "POST", "/volumes/create", b'{"Name": "a/b"}')
    assert status == 400 and "includes invalid characters" in json.loads(body)["message"]
    status, _, body = raw(rt.socket, "POST", "/volumes/create",
                          b'{"Name": "n", "Driver": "nfs"}')
    assert status == 501 and "volume driver nfs" in json.loads(body)["message"]


def test_bind_mounts_read_write_and_read_only(rt, tmp_path):
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in").write_text("from host\n")
    out = rt.out("run", "--rm", "-v", f"{host}:/h", "busybox",
                 "sh", "-c", "cat /h/in; echo from container > /h/out")
    assert out == "from host"
    assert (host / "out").read_text() == "from container\n"
    ro = rt.docker("run", "--rm", "-v", f"{host}:/h:ro", "busybox",
                   "sh", "-c", "cat /h/in && touch /h/nope", check=False)
    assert ro.returncode == 1 and "Read-only file system" in err(ro)
    assert ro.stdout.decode() == "from host\n" and not (host / "nope").exists()
    cid = rt.out("create", "--mount", f"type=bind,source={host},target=/m,readonly",
                 "busybox", "touch", "/m/nope")
    mounts = json.loads(rt.out("inspect", "-f", "{{json .Mounts}}", cid))
    assert mounts == [{"Type": "bind", "Source": str(host), "Destination": "/m",
                       "Mode": "", "RW": False, "Propagation": "rprivate"}]
    rt.docker("start", "-a", cid, check=False)
    assert rt.out("inspect", "-f", "{{.State.ExitCode}}", cid) == "1"
    assert not (host / "nope").exists()
    rt.docker("rm", cid)


def test_missing_bind_source(rt, tmp_path):
    """--mount refuses a missing host path; -v creates it (moby validate.go)."""
    missing = tmp_path / "absent"
    refused = rt.docker("run", "--rm", "--mount", f"type=bind,source={missing},target=/x",
                        "busybox", "true", check=False)
    assert refused.returncode == 125
    assert ('invalid mount config for type "bind": bind source path does not exist: '
            f"{missing}") in err(refused)
    assert not missing.exists()
    rt.out("run", "--rm", "-v", f"{missing}:/x", "busybox", "touch", "/x/made")
    assert (missing / "made").exists()
    bad = rt.docker("run", "--rm", "-v", "/a:relative", "busybox", "true", check=False)
    assert "invalid mount path: 'relative' mount path must be absolute" in err(bad)


def test_tmpfs_and_read_only_root(rt):
    line = rt.out("run", "--rm", "--tmpfs", "/scratch:size=1m", "busybox",
                  "grep", " /scratch ", "/proc/mounts")
    assert line.startswith("tmpfs /scratch tmpfs ") and "size=1024k" in line
    line = rt.out("run", "--rm", "--mount", "type=tmpfs,target=/t", "busybox",
                  "grep", " /t ", "/proc/mounts")
    assert line.startswith("tmpfs /t tmpfs ")
    ro = rt.docker("run", "--rm", "--read-only", "-v", "rw-vol:/data", "busybox", "sh", "-c",
                   "echo ok > /data/f && cat /data/f && touch /root-file", check=False)
    assert ro.stdout.decode() == "ok\n"
    assert ro.returncode == 1 and "touch: /root-file: Read-only file system" in err(ro)
    rt.docker("volume", "rm", "rw-vol")


def test_rm_v_removes_anonymous_volumes_only(rt):
    before = set(rt.out("volume", "ls", "-q").split())
    cid = rt.out("create", "-v", "/anon", "-v", "named-stays:/named", "busybox", "true")
    made = set(rt.out("volume", "ls", "-q").split()) - before
    assert "named-stays" in made and len(made) == 2
    rt.docker("rm", "-v", cid)
    assert set(rt.out("volume", "ls", "-q").split()) - before == {"named-stays"}
    rt.docker("volume", "rm", "named-stays")


# --- health checks ----------------------------------------------------------------------

def test_failing_health_check_turns_the_container_unhealthy(rt):
    since = time.time()
    rt.out("run", "-d", "--name", "sick", "--health-cmd", "echo failing; exit 3",
           "--health-interval", "1s", "--health-retries", "2", "busybox", "sleep", "600")
    rt.out("run", "-d", "--name", "fine", "--health-cmd", "test -d /proc/1",
           "--health-interval", "1s", "busybox", "sleep", "600")
    rt.out("run", "-d", "--name", "waiting", "--health-cmd", "true",
           "--health-interval", "1h", "busybox", "sleep", "600")  # no probe before 1h
    assert rt.out("ps", "--filter", "name=waiting", "--format", "{{.Status}}").endswith(
        " (health: starting)")
    assert "waiting" in rt.out("ps", "--filter", "health=starting",
                               "--format", "{{.Names}}").split()
    wait_for(lambda: rt.out("ps", "--filter", "health=unhealthy", "--format", "{{.Names}}")
             == "sick", 20, "sick unhealthy")
    wait_for(lambda: rt.out("ps", "--filter", "health=healthy", "--format", "{{.Names}}")
             == "fine", 20, "fine healthy")
    status = rt.out("ps", "--filter", "name=sick", "--format", "{{.Status}}")
    assert status.startswith("Up ") and status.endswith(" (unhealthy)")
    assert rt.out("ps", "--filter", "name=fine", "--format", "{{.Status}}").endswith(
        " (healthy)")
    health = json.loads(rt.out("inspect", "-f", "{{json .State.Health}}", "sick"))
    assert health["Status"] == "unhealthy" and health["FailingStreak"] >= 2
    assert 2 <= len(health["Log"]) <= 5
    assert {(e["ExitCode"], e["Output"]) for e in health["Log"]} == {(3, "failing\n")}
    seen = [(e["Actor"]["Attributes"]["name"], e["Action"])
            for e in events(rt, since, "event=health_status")]
    assert seen == [("sick", "health_status: unhealthy"), ("fine", "health_status: healthy")] \
        or seen == [("fine", "health_status: healthy"), ("sick", "health_status: unhealthy")]
    rt.docker("rm", "-f", "sick", "fine", "waiting")


def test_image_healthcheck_timeout_and_no_healthcheck(rt):
    """HEALTHCHECK from the image config; --no-healthcheck turns it off; a probe that
    outlives --health-timeout counts as failed with moby's text."""
    cid = rt.out("run", "-d", "checked")
    config = json.loads(rt.out("inspect", "-f", "{{json .Config.Healthcheck}}", cid))
    assert config == {"Test": ["CMD-SHELL", "test -e /tmp/ok"], "Interval": 10**9,
                      "Retries": 1}
    wait_for(lambda: rt.out("inspect", "-f", "{{.State.Health.Status}}", cid) == "unhealthy",
             20, "unhealthy without /tmp/ok")
    rt.docker("exec", cid, "touch", "/tmp/ok")
    wait_for(lambda: rt.out("inspect", "-f", "{{.State.Health.Status}}", cid) == "healthy",
             20, "healthy with /tmp/ok")
    off = rt.out("run", "-d", "--no-healthcheck", "checked")
    time.sleep(1.5)  # longer than the image's interval: no check may start
    assert rt.out("inspect", "-f", "{{json .State.Health}}", off) == "null"
    assert not rt.out("ps", "--filter", f"id={off}", "--format", "{{.Status}}").endswith(")")
    slow = rt.out("run", "-d", "--health-cmd", "sleep 5", "--health-interval", "1s",
                  "--health-timeout", "500ms", "--health-retries", "1", "busybox", "sleep", "600")
    wait_for(lambda: rt.out("inspect", "-f", "{{.State.Health.Status}}", slow) == "unhealthy",
             20, "unhealthy after a timeout")
    entry = json.loads(rt.out("inspect", "-f", "{{json .State.Health}}", slow))["Log"][0]
    assert (entry["ExitCode"], entry["Output"]) == (-1, "Health check exceeded timeout (500ms)")
    rt.docker("rm", "-f", cid, off, slow)


def test_bad_healthcheck_values_are_refused(rt):
    status, _, body = raw(rt.socket, "POST", "/containers/create", json.dumps({
        "Image": "busybox", "Cmd": ["true"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}}).encode())
    assert (status, json.loads(body)) == (
        400, {"message": "Interval in Healthcheck cannot be less than 1ms"})


# --- what the runtime cannot do -------------------------------------------------------------

@pytest.mark.parametrize("flags, key", [
    (["--privileged"], "HostConfig.Privileged"),
    (["--cap-drop", "ALL"], "HostConfig.CapDrop"),
    (["--log-driver", "syslog"], "HostConfig.LogConfig.Type syslog"),
    (["--pid", "host"], "HostConfig.PidMode"),
    (["--ulimit", "nofile=10:10"], "HostConfig.Ulimits"),
])
def test_unsupported_options_answer_501(rt, flags, key):
    before = rt.out("ps", "-aq")
    result = rt.docker("run", "--rm", *flags, "busybox", "true", check=False)
    assert result.returncode == 125
    assert f"the exec runtime does not support {key}" in err(result)
    assert rt.out("ps", "-aq") == before  # nothing was created


def test_unsupported_option_through_the_sdk(rt, client):
    with pytest.raises(docker.errors.APIError) as caught:
        client.containers.create("busybox", ["true"], devices=["/dev/null:/dev/xnull"])
    assert caught.value.status_code == 501
    assert "HostConfig.Devices" in caught.value.explanation
    # the SDK's and CLI's zero values are not requests
    client.containers.run("busybox", ["true"], remove=True, privileged=False, cap_drop=[])


# --- through the manager --------------------------------------------------------------------

@pytest.fixture(scope="module")
def managed(tmp_path_factory):
    """A manager with one exec agent (static discovery), busybox imported."""
    folder = tmp_path_factory.mktemp("exec-managed")
    port = free_port()
    manager = Manager("manager", folder, f"nodes://127.0.0.1:{port}")
    agent = Agent("solo", folder, "")
    agent.args[agent.args.index("--advertise") + 1] = f"127.0.0.1:{port}"
    agent.args.remove("")
    try:
        agent.start()
        manager.start()
        wait_for(lambda: manager.nodes() == {"solo": "Healthy"}, 30, "a healthy node")
        manager.import_busybox()
        yield manager
    finally:
        manager.stop()
        agent.cleanup()


def test_volume_and_health_through_the_manager(managed):
    managed.docker("run", "--name", "mw", "-v", "mvol:/data", "busybox",
                   "sh", "-c", "echo via manager > /data/f")
    managed.docker("rm", "mw")
    assert managed.docker("run", "--rm", "-v", "mvol:/d", "busybox",
                          "cat", "/d/f") == "via manager"
    assert "solo/mvol" in managed.docker("volume", "ls", "-q").split()  # classic: node/name
    managed.docker("run", "-d", "--name", "msick", "--health-cmd", "false",
                   "--health-interval", "1s", "--health-retries", "1", "busybox", "sleep", "600")
    managed.docker("run", "-d", "--name", "mfine", "--health-cmd", "true",
                   "--health-interval", "1s", "busybox", "sleep", "600")
    wait_for(lambda: managed.docker("ps", "--filter", "health=unhealthy",
                                    "--format", "{{.Names}}") == "solo/msick", 30, "unhealthy")
    wait_for(lambda: managed.docker("ps", "--filter", "health=healthy",
                                    "--format", "{{.Names}}") == "solo/mfine", 30, "healthy")
    assert managed.docker("ps", "--filter", "name=msick",
                          "--format", "{{.Status}}").endswith("(unhealthy)")
    assert managed.docker("inspect", "-f", "{{.State.Health.Status}}", "msick") == "unhealthy"
    # an unhealthy container does not make its node unhealthy: placement goes on
    assert managed.nodes() == {"solo": "Healthy"}
    assert managed.docker("run", "--rm", "busybox", "echo", "placed") == "placed"
    refused = subprocess.run(["docker", "-H", f"tcp://{managed.addr}", "run", "--rm",
                              "--privileged", "busybox", "true"], capture_output=True, text=True)
    assert "the exec runtime does not support HostConfig.Privileged" in refused.stderr
    managed.docker("rm", "-f", "msick", "mfine")
    managed.docker("volume", "rm", "mvol")


def test_volumes_survive_a_runtime_restart(tmp_path):
    """Volumes are records on disk: a restarted runtime knows them and their users."""
    runtime = RuntimeProcess(tmp_path)
    runtime.start()
    try:
        runtime.import_busybox()
        cid = runtime.out("create", "-v", "durable:/d", "busybox", "true")
        runtime.stop()
        runtime.start()
        refused = runtime.docker("volume", "rm", "durable", check=False)
        assert f"volume is in use - [{cid}]" in err(refused)
        runtime.docker("rm", cid)
        runtime.docker("volume", "rm", "durable")
        assert not os.path.exists(pathlib.Path(tmp_path) / "volumes" / "durable")
    finally:
        runtime.stop()
        runtime.cleanup()


def test_plain_processes_refuse_mounts_but_keep_image_volumes_quiet(tmp_path):
    """Without isolation nothing can be mounted: asking for it is a 501, an image's own
    VOLUME (nobody asked) is left out; health checks still run (plain exec)."""
    runtime = RuntimeProcess(tmp_path, "--no-isolation")
    runtime.start()
    try:
        runtime.import_busybox("vol-image:latest", "VOLUME /data")
        refused = runtime.docker("run", "--rm", "-v", "xx:/x", "vol-image", "true", check=False)
        assert "the exec runtime cannot mount volumes" in err(refused)
        refused = runtime.docker("run", "--rm", "--read-only", "vol-image", "true",
                                 check=False)
        assert refused.returncode == 125 and "read-only root" in err(refused)
        cid = runtime.out("run", "-d", "--health-cmd", "true", "--health-interval", "1s",
                          "vol-image", "sleep", "60")
        wait_for(lambda: runtime.out("inspect", "-f", "{{.State.Health.Status}}", cid)
                 == "healthy", 20, "healthy without isolation")
        assert runtime.out("volume", "ls", "-q") == ""
        runtime.docker("rm", "-f", cid)
    finally:
        runtime.stop()
        runtime.cleanup()
