"""A container's mounts through its life: decided at create (volumes made there, as the
Engine does), turned into what the shim mounts at start (missing `-v` host folders made
then), shown by inspect and `ps`, and its anonymous volumes dropped with `rm -v`/--rm."""

from __future__ import annotations

import os

from flock.agent.runtimes.exec import mounts
from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.exec.mounts import MountPoint
from flock.agent.runtimes.exec.store import ContainerRecord
from flock.agent.runtimes.exec.volumes import VolumeManager

KEY = "mounts"  # in ContainerRecord.extra


def plan(config: dict, host_config: dict, isolated: bool, volumes: VolumeManager,
         image_rootfs: str, image_volumes: dict | None = None) -> list[dict]:
    """The mount points of a new container, volumes created (and filled from the image)
    on first use; 501 where the runtime runs plain processes and cannot mount what was
    asked for (the image's own VOLUMEs are then left out: nobody asked for them)."""
    points = mounts.requested(config, host_config, os.path.exists)
    if not isolated:
        points = [p for p in points
                  if not (p.anonymous and p.target in (image_volumes or {}))]
    if (points or host_config.get("ReadonlyRootfs")) and not isolated:
        raise ApiError(501, "the exec runtime cannot mount volumes, binds, tmpfs or a "
                            "read-only root here: it runs plain processes (no root or no "
                            "namespaces)")
    for point in points:
        if point.type == "volume":
            record = volumes.for_container(point.source, image_rootfs, point.target,
                                           copy=not point.no_copy)
            point.source = record.name
    return [p.as_dict() for p in points]


def points_of(record: ContainerRecord) -> list[MountPoint]:
    return [MountPoint.from_dict(d) for d in record.extra.get(KEY) or []]


def for_shim(record: ContainerRecord, volumes: VolumeManager | None) -> list[dict]:
    """What the shim mounts: binds by host path (a volume is a bind of its folder)."""
    out = []
    for point in points_of(record):
        source = point.source
        if point.type == "volume":
            assert volumes is not None
            source = str(volumes.path(point.source))
            os.makedirs(source, exist_ok=True)
        elif point.type == "bind" and point.create_source and not os.path.exists(source):
            os.makedirs(source, exist_ok=True)
        out.append({"type": point.type, "source": source, "target": point.target,
                    "readonly": point.readonly, "tmpfs_options": point.tmpfs_options})
    return out


def inspect_entries(record: ContainerRecord, volumes: VolumeManager | None) -> list[dict]:
    return [mounts.inspect_entry(p, str(volumes.path(p.source)) if volumes and
                                 p.type == "volume" else "")
            for p in points_of(record) if p.listed]


def uses_volume(record: ContainerRecord, name: str) -> bool:
    return any(p.type == "volume" and p.source == name for p in points_of(record))


def matches_filter(record: ContainerRecord, wanted: str) -> bool:
    """`ps --filter volume=X`: a volume's name or a mount's destination."""
    return any((p.type == "volume" and p.source == wanted) or p.target == wanted
               for p in points_of(record))


def drop_anonymous(record: ContainerRecord, volumes: VolumeManager | None) -> None:
    """`rm -v` and --rm: the container's anonymous volumes go with it (when no other
    container uses them); named ones stay."""
    if volumes is None:
        return
    for point in points_of(record):
        if point.type == "volume" and point.anonymous and not volumes.users_of(point.source):
            volumes.remove(point.source, force=True)
