"""HostConfig options the exec runtime does not honour: asked for with a value other than
the one clients send by default, they answer 501 instead of being ignored.

The docker CLI and the SDK send many keys on every create with zero values (false, 0,
"", null, [], {}); only a different value is a request. Keys not listed here are either
honoured (mounts, limits, restart policy, ...) or belong to the network side
(NetworkMode, PortBindings, Dns..., Links, ExtraHosts), which decides about them."""

from __future__ import annotations

from flock.agent.runtimes.exec.errors import ApiError

ZERO = (None, False, 0, "", [], {})
# key -> the values that do not ask for anything (besides ZERO)
DEFAULTS: dict[str, tuple] = {
    "Privileged": (), "CapDrop": (), "Devices": (), "DeviceRequests": (),
    "DeviceCgroupRules": (), "VolumesFrom": (), "VolumeDriver": ("local",),
    "SecurityOpt": (), "IpcMode": ("private", "shareable"), "PidMode": ("private",),
    "UTSMode": ("private",), "UsernsMode": ("private",), "CgroupnsMode": ("private", "host"),
    "Cgroup": (), "CgroupParent": (), "Runtime": ("exec",), "Isolation": ("default",),
    "ShmSize": (), "Sysctls": (), "Ulimits": (), "GroupAdd": (), "OomKillDisable": (),
    "OomScoreAdj": (), "MemorySwap": (-1,), "MemorySwappiness": (-1,), "KernelMemory": (),
    "KernelMemoryTCP": (), "CpusetCpus": (), "CpusetMems": (), "CpuRealtimePeriod": (),
    "CpuRealtimeRuntime": (), "CpuCount": (), "CpuPercent": (), "BlkioWeight": (),
    "BlkioWeightDevice": (), "BlkioDeviceReadBps": (), "BlkioDeviceWriteBps": (),
    "BlkioDeviceReadIOps": (), "BlkioDeviceWriteIOps": (), "IOMaximumIOps": (),
    "IOMaximumBandwidth": (), "StorageOpt": (), "Init": (), "MaskedPaths": (),
    "ReadonlyPaths": (), "Annotations": (),
}
# Config keys (besides HostConfig's) that would change the container if honoured
CONFIG_DEFAULTS: dict[str, tuple] = {"Domainname": (), "NetworkDisabled": ()}
WHY = {
    "Privileged": "containers get no host devices",
    "CapDrop": "containers run with every capability of root",
    "LogConfig": "it writes json-file logs only",
    "Domainname": "the UTS namespace gets the hostname only",
    "NetworkDisabled": "use --network none",
}


def _asked_for(key: str, value: object, defaults: dict[str, tuple] = DEFAULTS) -> bool:
    if any(value == zero and type(value) is type(zero) for zero in ZERO if zero is not None):
        return False
    return value is not None and value not in defaults[key]


def refuse_unsupported(host_config: dict) -> None:
    """501 naming the first option asked for that the runtime cannot honour."""
    for key in DEFAULTS:
        if key in host_config and _asked_for(key, host_config[key]):
            _refuse(key)
    log_type = (host_config.get("LogConfig") or {}).get("Type") or ""
    if log_type not in ("", "json-file"):
        _refuse("LogConfig", f"LogConfig.Type {log_type}")


def refuse_unsupported_config(config: dict) -> None:
    """The same for the container's Config (the create body's top level)."""
    for key in CONFIG_DEFAULTS:
        if key in config and _asked_for(key, config[key], CONFIG_DEFAULTS):
            _refuse(key, section="Config")


def _refuse(key: str, what: str = "", section: str = "HostConfig") -> None:
    reason = WHY.get(key, "use the docker runtime for it")
    raise ApiError(501, f"the exec runtime does not support {section}.{what or key}; "
                        f"{reason}")
