"""The pure rules behind the exec runtime's mounts, health checks and 501s: moby's texts
(volume/mounts/linux_parser.go, validate.go; daemon/health.go) and its defaults."""

from __future__ import annotations

import pytest

from flock.agent.runtimes.exec import health, mounts
from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.exec.unsupported import refuse_unsupported

SECOND = 10**9


def message(call) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value.status, caught.value.message


@pytest.mark.parametrize("raw, text", [
    ("/src:/dst:bogus", "invalid mode: bogus"),
    ("/dst:rw", "invalid volume specification: '/dst:rw'"),
    ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
    ("/src:/", "invalid volume specification: '/src:/': invalid specification: "
               "destination can't be '/'"),
    ("x:rel", "invalid volume specification: 'x:rel': invalid mount path: 'rel' mount "
              "path must be absolute"),
])
def test_bind_specs_refused_in_mobys_words(raw, text):
    assert message(lambda: mounts.parse_bind(raw)) == (400, text)


def test_bind_specs_parsed():
    bind = mounts.parse_bind("/src/:/dst:ro")
    assert (bind.type, bind.source, bind.target, bind.readonly, bind.propagation) == (
        "bind", "/src", "/dst", True, "rprivate")
    named = mounts.parse_bind("data:/d")
    assert (named.type, named.source, named.mode, named.anonymous) == ("volume", "data", "z",
                                                                       False)
    assert mounts.parse_bind("/only").anonymous


def test_mount_objects_and_duplicates():
    def exists(path):
        return path == "/there"

    assert message(lambda: mounts.requested({}, {"Mounts": [
        {"Type": "bind", "Source": "/gone", "Target": "/x"}]}, exists)) == (
        400, 'invalid mount config for type "bind": bind source path does not exist: /gone')
    assert message(lambda: mounts.requested({}, {"Mounts": [
        {"Type": "volume", "Target": "/x", "ReadOnly": True}]}, exists))[1].endswith(
        "must not set ReadOnly mode when using anonymous volumes")
    assert message(lambda: mounts.requested({}, {"Mounts": [{"Type": "weird", "Target": "/x"}]},
                                            exists))[1] == \
        'invalid mount config for type "weird": mount type unknown'
    assert message(lambda: mounts.requested({}, {"Binds": ["/there:/x"], "Mounts": [
        {"Type": "tmpfs", "Target": "/x"}]}, exists)) == (400, "Duplicate mount point: /x")
    points = mounts.requested({"Volumes": {"/x": {}, "/anon": {}}},
                              {"Binds": ["/there:/x"], "Tmpfs": {"/t": "size=1m"}}, exists)
    assert [(p.type, p.target, p.listed) for p in points] == [
        ("bind", "/x", True), ("tmpfs", "/t", False), ("volume", "/anon", True)]


def test_health_states_follow_mobys_rules():
    check = health.Check(["true"], SECOND, SECOND, 10 * SECOND, 2)
    state = health.starting(None)
    fail = {"ExitCode": 1, "Output": ""}
    # inside the start period a failure does not count while still starting
    assert not health.record_result(state, dict(fail), check, 5 * SECOND)
    assert (state["Status"], state["FailingStreak"]) == ("starting", 0)
    assert not health.record_result(state, dict(fail), check, 11 * SECOND)
    assert health.record_result(state, dict(fail), check, 12 * SECOND)
    assert (state["Status"], state["FailingStreak"]) == ("unhealthy", 2)
    assert health.record_result(state, {"ExitCode": 0, "Output": ""}, check, 13 * SECOND)
    assert (state["Status"], state["FailingStreak"]) == ("healthy", 0)
    for n in range(6):
        health.record_result(state, {"ExitCode": 0, "Output": str(n)}, check, 20 * SECOND)
    assert [e["Output"] for e in state["Log"]] == ["1", "2", "3", "4", "5"]


def test_health_config_merge_defaults_and_texts():
    image = {"Test": ["CMD-SHELL", "check"], "Interval": 5 * SECOND, "Retries": 4}
    assert health.merge({"Timeout": SECOND}, image) == {
        "Test": ["CMD-SHELL", "check"], "Timeout": SECOND, "Interval": 5 * SECOND,
        "Retries": 4}
    assert health.effective({"Healthcheck": health.merge({"Test": ["NONE"]}, image)}) is None
    check = health.effective({"Healthcheck": {"Test": ["CMD-SHELL", "exit 1"]}})
    assert check == health.Check(["/bin/sh", "-c", "exit 1"], 30 * SECOND, 30 * SECOND, 0, 3)
    assert health.timeout_message(check) == "Health check exceeded timeout (30s)"
    assert [health.go_duration(n) for n in (SECOND // 2, 90 * SECOND, 3600 * SECOND)] == [
        "500ms", "1m30s", "1h0m0s"]
    assert health.from_instruction("--interval=2s CMD [\"true\"]") == {
        "Test": ["CMD", "true"], "Interval": 2 * SECOND}
    assert message(lambda: health.validate({"Retries": -1})) == (
        400, "Retries in Healthcheck cannot be negative")


def test_zero_values_clients_send_are_not_requests():
    """What the docker CLI 20.10 sends on a plain `docker run` (and docker-py's nulls)."""
    refuse_unsupported({
        "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
        "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no"},
        "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None,
        "CapDrop": None, "CgroupnsMode": "", "Dns": [], "IpcMode": "", "Cgroup": "",
        "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
        "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "",
        "ShmSize": 0, "Runtime": "", "Isolation": "", "CpuShares": 0, "Memory": 0,
        "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "Devices": [],
        "DeviceCgroupRules": None, "DeviceRequests": None, "KernelMemory": 0,
        "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None,
        "Ulimits": None, "MaskedPaths": None, "ReadonlyPaths": None, "Init": None})
    assert message(lambda: refuse_unsupported({"MemorySwap": 2 << 30})) == (
        501, "the exec runtime does not support HostConfig.MemorySwap; use the docker "
             "runtime for it")
