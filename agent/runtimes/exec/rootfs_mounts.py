"""The container's own mounts inside its mount namespace, made by the shim's child
between building the root and chroot: binds (volumes are binds of their folder), tmpfs,
read-only binds, and last a read-only root (`--read-only`) that leaves /proc, /dev and
the mounts writable as the Engine does."""

from __future__ import annotations

import os
import posixpath

from flock.agent.runtimes.exec import isolation

MS_REMOUNT = 32
MAX_LINKS = 40
FLAG_BITS = {"ro": isolation.MS_RDONLY, "nosuid": isolation.MS_NOSUID,
             "nodev": isolation.MS_NODEV, "noexec": isolation.MS_NOEXEC}
FLAG_CLEARS = {"rw": "ro", "suid": "nosuid", "dev": "nodev", "exec": "noexec"}
TMPFS_DEFAULT = ("nosuid", "nodev", "noexec")


def inside(root: str, path: str) -> str:
    """`path` of the container resolved on the host, symlinks followed as if `root` were
    /, so that a link in the image cannot point a mount outside the container."""
    parts = [p for p in path.split("/") if p]
    done = ""
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            done = posixpath.dirname(done)
            continue
        candidate = f"{done}/{part}"
        host = root + candidate
        if os.path.islink(host):
            hops += 1
            if hops > MAX_LINKS:
                raise OSError(f"too many links resolving {path}")
            link = os.readlink(host)
            if link.startswith("/"):
                done = ""
            parts = [p for p in link.split("/") if p] + parts
            continue
        done = candidate
    return root + done


def tmpfs_flags(options: str) -> tuple[int, str]:
    """Mount flags and data of a tmpfs: the Engine's defaults (nosuid, nodev, noexec)
    changed by the options given."""
    wanted = set(TMPFS_DEFAULT)
    data = []
    for option in filter(None, options.split(",")):
        if option in FLAG_BITS:
            wanted.add(option)
        elif option in FLAG_CLEARS:
            wanted.discard(FLAG_CLEARS[option])
        elif "=" in option:
            data.append(option)
    flags = 0
    for name in wanted:
        flags |= FLAG_BITS[name]
    return flags, ",".join(data)


def _make_target(target: str, directory: bool) -> None:
    if directory:
        os.makedirs(target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if not os.path.exists(target):
        open(target, "a").close()


def _read_only(target: str) -> None:
    """A remount keeps the flags the mount already has (nosuid, nodev, noexec)."""
    kept = os.statvfs(target).f_flag & (isolation.MS_NOSUID | isolation.MS_NODEV
                                        | isolation.MS_NOEXEC)
    isolation.mount(None, target, None,
                    MS_REMOUNT | isolation.MS_BIND | isolation.MS_RDONLY | kept)


def apply(root: str, spec: dict) -> None:
    """Every mount of spec["mounts"] (dicts with type, source, target, readonly,
    tmpfs_options), then the read-only root."""
    for mount in spec.get("mounts") or []:
        target = inside(root, mount["target"])
        if mount["type"] == "tmpfs":
            _make_target(target, True)
            flags, data = tmpfs_flags(mount.get("tmpfs_options") or "")
            isolation.mount("tmpfs", target, "tmpfs", flags, data or None)
            continue
        _make_target(target, os.path.isdir(mount["source"]))
        isolation.mount(mount["source"], target, None, isolation.MS_BIND | isolation.MS_REC)
        if mount.get("readonly"):
            _read_only(target)
    if spec.get("readonly_root"):
        os.makedirs(inside(root, spec.get("workdir") or "/"), exist_ok=True)
        _read_only(root)
