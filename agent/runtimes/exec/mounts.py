"""What a container asks to have mounted: HostConfig.Binds (`-v`), HostConfig.Mounts
(`--mount`), HostConfig.Tmpfs (`--tmpfs`) and Config.Volumes (anonymous `-v /path` and
the image's VOLUMEs), checked with the Engine's rules and words and turned into one list
of mount points. Pure logic: creating volumes and host folders is volumes.py's job.

The texts follow moby's volume/mounts (linux_parser.go, validate.go, parser.go): a `-v`
bind of a missing host path is created at start, a `--mount` bind of one is refused."""

from __future__ import annotations

import posixpath
import re
from dataclasses import asdict, dataclass

from flock.agent.runtimes.exec.errors import ApiError, bad_request

RW_MODES = {"rw", "ro", "ro-non-recursive", "ro-force-recursive", "rro"}
LABEL_MODES = {"z", "Z"}
PROPAGATIONS = {"private", "rprivate", "slave", "rslave", "shared", "rshared"}
COPY_MODES = {"nocopy"}
CONSISTENCY = {"consistent", "cached", "delegated"}
MOUNT_TYPES = {"bind", "volume", "tmpfs"}
VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
TMPFS_FLAGS = {"ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "sync",
               "async", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
               "strictatime", "nostrictatime"}
TMPFS_DATA = {"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks"}


@dataclass
class MountPoint:
    """One mount of a container, as kept in its record (extra["mounts"])."""

    type: str  # bind | volume | tmpfs
    target: str
    source: str = ""  # host path (bind), volume name (volume)
    readonly: bool = False
    mode: str = ""  # the mode text given with -v
    propagation: str = ""
    tmpfs_options: str = ""
    anonymous: bool = False
    create_source: bool = False  # -v binds: a missing host folder is made at start
    no_copy: bool = False
    listed: bool = True  # --tmpfs mounts are not in inspect's Mounts[]

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MountPoint:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _invalid_spec(raw: str) -> ApiError:
    return bad_request(f"invalid volume specification: '{raw}'")


def _valid_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts: dict[str, int] = {}
    for option in mode.split(","):
        for kind, names in (("rw", RW_MODES), ("label", LABEL_MODES),
                            ("propagation", PROPAGATIONS), ("copy", COPY_MODES),
                            ("consistency", CONSISTENCY)):
            if option in names:
                counts[kind] = counts.get(kind, 0) + 1
                break
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _target_problem(target: str) -> str | None:
    if posixpath.normpath(target.replace("\\", "/")) == "/":
        return "invalid specification: destination can't be '/'"
    if not posixpath.isabs(target):
        return f"invalid mount path: '{target}' mount path must be absolute"
    return None


def check_volume_name(name: str) -> None:
    """The local driver's rule, in its words."""
    if len(name) < 2:
        raise bad_request(f"create {name}: volume name is too short, names should be at "
                          f"least two alphanumeric characters")
    if not VOLUME_NAME.match(name):
        raise bad_request(f'create {name}: "{name}" includes invalid characters for a local '
                          f'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you '
                          f"intended to pass a host directory, use absolute path")


def parse_bind(raw: str) -> MountPoint:
    """One HostConfig.Binds entry: `[SOURCE:]TARGET[:MODE]`."""
    parts = raw.split(":", 3)
    if not parts[0] or len(parts) > 3:
        raise _invalid_spec(raw)
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            raise _invalid_spec(raw)
        source, target = parts
    else:
        source, target, mode = parts
    if not _valid_mode(mode):
        raise bad_request(f"invalid mode: {mode}")
    problem = _target_problem(target)
    if problem:
        raise bad_request(f"invalid volume specification: '{raw}': {problem}")
    options = mode.split(",") if mode else []
    readonly = any(o in ("ro", "ro-non-recursive", "ro-force-recursive", "rro")
                   for o in options)
    if posixpath.isabs(source):
        propagation = _honoured(next((o for o in options if o in PROPAGATIONS), "rprivate"))
        return MountPoint("bind", posixpath.normpath(target), posixpath.normpath(source),
                          readonly, mode, propagation, create_source=True)
    if source:
        check_volume_name(source)
    return MountPoint("volume", posixpath.normpath(target), source, readonly,
                      mode or ("z" if source else ""), anonymous=not source,
                      no_copy="nocopy" in options)


def _mount_error(kind: str, message: str) -> ApiError:
    return bad_request(f'invalid mount config for type "{kind}": {message}')


def parse_mount(spec: object) -> MountPoint:
    """One HostConfig.Mounts entry (`--mount`)."""
    if not isinstance(spec, dict):
        raise bad_request("invalid mount config: each mount must be an object")
    kind = str(spec.get("Type") or "")
    target = str(spec.get("Target") or "")
    source = str(spec.get("Source") or "")
    readonly = bool(spec.get("ReadOnly"))
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    problem = _target_problem(target)
    if problem:
        raise _mount_error(kind, problem)
    if kind not in MOUNT_TYPES:
        if kind in ("npipe", "cluster", "image"):
            raise ApiError(501, f'the exec runtime does not support mounts of type "{kind}"')
        raise _mount_error(kind, "mount type unknown")
    target = posixpath.normpath(target)
    if kind == "bind":
        return _bind_mount(spec, source, target, readonly)
    if kind == "volume":
        return _volume_mount(spec, source, target, readonly)
    return _tmpfs_mount(spec, source, target, readonly)


def _bind_mount(spec: dict, source: str, target: str, readonly: bool) -> MountPoint:
    if not source:
        raise _mount_error("bind", "field Source must not be empty")
    if spec.get("VolumeOptions"):
        raise _mount_error("bind", "field VolumeOptions must not be specified")
    options = spec.get("BindOptions") or {}
    propagation = str(options.get("Propagation") or "rprivate")
    if propagation not in PROPAGATIONS:
        raise _mount_error("bind", f"invalid propagation mode: {propagation}")
    if not posixpath.isabs(source):
        raise _mount_error("bind", f"invalid mount path: '{source}' mount path must be "
                                   f"absolute")
    create = bool(options.get("CreateMountpoint"))
    _honoured(propagation)
    return MountPoint("bind", target, posixpath.normpath(source), readonly, "", propagation,
                      create_source=create)


def _honoured(propagation: str) -> str:
    """Binds are made in the container's own mount namespace, private (the Engine's
    default, rprivate): shared or slave propagation would be shown and not done."""
    if propagation not in ("private", "rprivate"):
        raise ApiError(501, f"the exec runtime does not support bind propagation "
                            f"{propagation}: its bind mounts are private")
    return propagation


def _volume_mount(spec: dict, source: str, target: str, readonly: bool) -> MountPoint:
    if spec.get("BindOptions"):
        raise _mount_error("volume", "field BindOptions must not be specified")
    if readonly and not source:
        raise _mount_error("volume", "must not set ReadOnly mode when using anonymous volumes")
    options = spec.get("VolumeOptions") or {}
    driver = (options.get("DriverConfig") or {}).get("Name") or "local"
    if driver != "local" or (options.get("DriverConfig") or {}).get("Options"):
        raise ApiError(501, f"the exec runtime does not support volume driver options "
                            f"(driver {driver}); its volumes are local folders")
    if options.get("Subpath"):
        raise ApiError(501, "the exec runtime does not support volume subpaths")
    if source:
        check_volume_name(source)
    return MountPoint("volume", target, source, readonly, anonymous=not source,
                      no_copy=bool(options.get("NoCopy")))


def _tmpfs_mount(spec: dict, source: str, target: str, readonly: bool) -> MountPoint:
    if spec.get("BindOptions"):
        raise _mount_error("tmpfs", "field BindOptions must not be specified")
    if source:
        raise _mount_error("tmpfs", "field Source must not be specified")
    options = spec.get("TmpfsOptions") or {}
    parts = ["ro"] if readonly else []
    if options.get("Mode"):
        parts.append(f"mode={int(options['Mode']):o}")
    if options.get("SizeBytes"):
        parts.append(f"size={int(options['SizeBytes'])}")
    return MountPoint("tmpfs", target, readonly=readonly, tmpfs_options=",".join(parts))


def parse_tmpfs(target: str, options: str) -> MountPoint:
    """One HostConfig.Tmpfs entry (`--tmpfs /path[:opts]`)."""
    problem = _target_problem(target)
    if problem:
        raise bad_request(f"invalid tmpfs mount: {problem}")
    for option in filter(None, (options or "").split(",")):
        key = option.split("=", 1)[0]
        if key not in TMPFS_FLAGS and key not in TMPFS_DATA:
            raise bad_request(f"invalid tmpfs option [\"{key}\"]")
    readonly = "ro" in (options or "").split(",")
    return MountPoint("tmpfs", posixpath.normpath(target), readonly=readonly,
                      tmpfs_options=options or "", listed=False)


def requested(config: dict, host_config: dict, source_exists) -> list[MountPoint]:
    """Every mount of a container create, duplicates refused as the Engine does."""
    points: list[MountPoint] = []
    binds = host_config.get("Binds") or []
    mounts = host_config.get("Mounts") or []
    tmpfs = host_config.get("Tmpfs") or {}
    if not isinstance(binds, list) or not all(isinstance(b, str) for b in binds):
        raise bad_request("HostConfig.Binds must be a list of strings")
    if not isinstance(mounts, list):
        raise bad_request("HostConfig.Mounts must be a list of mounts")
    if not isinstance(tmpfs, dict):
        raise bad_request("HostConfig.Tmpfs must be an object of path: options")
    for raw in binds:
        _add(points, parse_bind(raw))
    for spec in mounts:
        point = parse_mount(spec)
        if point.type == "bind" and not point.create_source and not source_exists(point.source):
            raise _mount_error("bind", f"bind source path does not exist: {point.source}")
        _add(points, point)
    for target, options in tmpfs.items():
        _add(points, parse_tmpfs(str(target), str(options or "")))
    taken = {p.target for p in points}
    for target in (config.get("Volumes") or {}):
        problem = _target_problem(str(target))
        if problem:
            raise bad_request(f"invalid volume specification: '{target}': {problem}")
        if posixpath.normpath(str(target)) not in taken:
            point = MountPoint("volume", posixpath.normpath(str(target)), anonymous=True)
            _add(points, point)
    return points


def _add(points: list[MountPoint], point: MountPoint) -> None:
    if any(p.target == point.target for p in points):
        raise bad_request(f"Duplicate mount point: {point.target}")
    points.append(point)


def inspect_entry(point: MountPoint, volume_path: str = "") -> dict:
    """An entry of inspect's Mounts[] and of `ps`' Mounts (types.MountPoint)."""
    entry: dict = {"Type": point.type}
    if point.type == "volume":
        entry["Name"] = point.source
    entry["Source"] = volume_path if point.type == "volume" else point.source
    entry["Destination"] = point.target
    if point.type == "volume":
        entry["Driver"] = "local"
    entry.update(Mode=point.mode, RW=not point.readonly, Propagation=point.propagation)
    return entry
