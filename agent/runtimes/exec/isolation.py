"""Linux building blocks of a container: namespaces (ctypes `unshare`, since Python 3.11
has no os.unshare), a private mount table with an overlay root, /proc and a small /dev,
chroot, and cgroup v1 limits. Everything here runs in the shim or its children."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import pathlib
import socket
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CONTAINER_NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_SET_CHILD_SUBREAPER = 36

CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
CGROUP_PARENT = "flock-exec"
CONTROLLERS = ("memory", "cpu", "pids", "freezer")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def join_netns(path: str) -> None:
    """Enter the network namespace the runtime prepared (network.py) for the container."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {path}")
    finally:
        os.close(fd)


def mount_etc_files(root: str, files: dict[str, str]) -> None:
    """The runtime's /etc/hosts, hostname and resolv.conf over the image's. A symlink in
    the image is replaced, never followed: it would resolve against the host's root."""
    for target, source in files.items():
        path = os.path.join(root, target.lstrip("/"))
        parent = os.path.dirname(path)
        if os.path.realpath(parent) != os.path.normpath(parent):
            continue  # /etc itself is a link: leave the image's files alone
        os.makedirs(parent, exist_ok=True)
        if os.path.islink(path) or (os.path.exists(path) and not os.path.isfile(path)):
            os.unlink(path)
        if not os.path.exists(path):
            open(path, "w").close()
        mount(source, path, None, MS_BIND)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    def enc(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                       enc(data)), f"mount {target}")


def set_child_subreaper() -> None:
    """Orphans of the container (its PID 1 after the middle process exits) come back to
    the shim, which can then wait for them."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def probe() -> bool:
    """Whether namespaces + mounts + chroot work here, tried in a throwaway process so
    the caller's own namespaces stay untouched."""
    if os.geteuid() != 0:
        return False
    try:
        done = subprocess.run([sys.executable, "-m", __name__, "--probe"],
                              capture_output=True, timeout=20,
                              env={**os.environ, "PYTHONPATH": python_path()})
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == b"1"


def python_path() -> str:
    root = str(pathlib.Path(__file__).resolve().parents[3])
    extra = os.environ.get("PYTHONPATH", "")
    return f"{root}:{extra}" if extra else root


def _probe_here() -> int:
    unshare(CONTAINER_NAMESPACES)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if os.getpid() == 1 else 1)
    _, status = os.waitpid(pid, 0)
    ok = os.waitstatus_to_exitcode(status) == 0
    print("1" if ok else "0")
    return 0


# --- cgroups -------------------------------------------------------------------------

def cgroup_available(controller: str) -> bool:
    base = CGROUP_ROOT / controller
    return base.is_dir() and os.access(base, os.W_OK) and (base / "cgroup.procs").exists()


def cgroup_dir(controller: str, cid: str) -> pathlib.Path:
    return CGROUP_ROOT / controller / CGROUP_PARENT / cid


def cgroup_settings(host_config: dict) -> dict[str, dict[str, str]]:
    """The cgroup v1 files to write for a HostConfig, by controller. The memory controller
    is always used when present so that OOM kills can be told apart."""
    settings: dict[str, dict[str, str]] = {}
    if cgroup_available("memory"):
        mem = settings.setdefault("memory", {})
        if host_config.get("Memory"):
            mem["memory.limit_in_bytes"] = str(int(host_config["Memory"]))
        if host_config.get("MemoryReservation"):
            mem["memory.soft_limit_in_bytes"] = str(int(host_config["MemoryReservation"]))
    if cgroup_available("freezer"):
        settings["freezer"] = {}  # for pause/unpause
    cpu: dict[str, str] = {}
    if host_config.get("CpuShares"):
        cpu["cpu.shares"] = str(int(host_config["CpuShares"]))
    if host_config.get("NanoCpus"):
        cpu["cpu.cfs_period_us"] = "100000"
        cpu["cpu.cfs_quota_us"] = str(int(host_config["NanoCpus"]) * 100000 // 10**9)
    elif host_config.get("CpuQuota"):
        cpu["cpu.cfs_period_us"] = str(int(host_config.get("CpuPeriod") or 100000))
        cpu["cpu.cfs_quota_us"] = str(int(host_config["CpuQuota"]))
    if cpu and cgroup_available("cpu"):
        settings["cpu"] = cpu
    if host_config.get("PidsLimit") and int(host_config["PidsLimit"]) > 0 \
            and cgroup_available("pids"):
        settings["pids"] = {"pids.max": str(int(host_config["PidsLimit"]))}
    return settings


def setup_cgroups(cid: str, settings: dict[str, dict[str, str]]) -> list[pathlib.Path]:
    """Create the container's cgroups and write their limits; returns their folders."""
    made = []
    for controller, files in settings.items():
        folder = cgroup_dir(controller, cid)
        folder.mkdir(parents=True, exist_ok=True)
        for name, value in files.items():
            (folder / name).write_text(value)
        made.append(folder)
    return made


def remove_cgroups(cid: str) -> None:
    """rmdir works only once the cgroup is empty; the caller retries after the exit."""
    for controller in CONTROLLERS:
        try:
            cgroup_dir(controller, cid).rmdir()
        except OSError:
            pass


def oom_killed(cid: str) -> bool:
    try:
        text = (cgroup_dir("memory", cid) / "memory.oom_control").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill" and value.strip() not in ("", "0"):
            return True
    return False


# --- inside the container ------------------------------------------------------------

def prepare_root(spec: dict) -> str:
    """An overlay of the image's root folder and the container's own layer, so writes
    stay with the container; the plain image folder when overlay is not available."""
    lower = spec["image_rootfs"]
    folder = pathlib.Path(spec["container_dir"])
    upper, work, merged = folder / "upper", folder / "work", folder / "rootfs"
    for path in (upper, work, merged):
        path.mkdir(exist_ok=True)
    try:
        mount("overlay", str(merged), "overlay", 0,
              f"lowerdir={lower},upperdir={upper},workdir={work}")
        return str(merged)
    except OSError:
        mount(lower, str(merged), None, MS_BIND | MS_REC)
        return str(merged)


def _mount_special(root: str, tty: bool) -> None:
    proc = os.path.join(root, "proc")
    os.makedirs(proc, exist_ok=True)
    mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    dev = os.path.join(root, "dev")
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID, "mode=755,size=65536k")
    for name in DEVICES:
        target = os.path.join(dev, name)
        open(target, "w").close()
        try:
            mount(f"/dev/{name}", target, None, MS_BIND)
        except OSError:
            os.unlink(target)
    os.makedirs(os.path.join(dev, "shm"), exist_ok=True)
    for name, link in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                       ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(link, os.path.join(dev, name))
    _mount_terminals(root, tty)


def _mount_terminals(root: str, tty: bool) -> None:
    """The host's pty folder, so that the container's terminal and those of `exec -t`
    (ptys of the host) have a name inside for ttyname() and `tty`; with a TTY, the
    container's own terminal as /dev/console too. (Containers run as root with all
    capabilities, so this exposes nothing they could not reach anyway.)"""
    pts = os.path.join(root, "dev", "pts")
    os.makedirs(pts, exist_ok=True)
    try:
        mount("/dev/pts", pts, None, MS_BIND)
        os.symlink("pts/ptmx", os.path.join(root, "dev", "ptmx"))
    except OSError:
        pass
    if tty:
        console = os.path.join(root, "dev", "console")
        open(console, "w").close()
        mount(os.ttyname(0), console, None, MS_BIND)


def _lookup_user(user: str) -> tuple[int, int]:
    """uid and gid for Config.User ("", "root", "1000", "1000:1000", "name[:group]"),
    from the container's own /etc/passwd and /etc/group."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")

    def find(path: str, key: str, field: int) -> int:
        if key.isdigit():
            return int(key)
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.strip().split(":")
                    if len(parts) > field and parts[0] == key:
                        return int(parts[field])
        except OSError:
            pass
        kind = "passwd" if path.endswith("passwd") else "group"
        raise OSError(f"unable to find user {key}: no matching entries in {kind} file")

    uid = find("/etc/passwd", name, 2)
    gid = find("/etc/group", group, 2) if group else _primary_gid(name, uid)
    return uid, gid


def _primary_gid(name: str, uid: int) -> int:
    try:
        with open("/etc/passwd") as fh:
            for line in fh:
                parts = line.strip().split(":")
                if len(parts) > 3 and (parts[0] == name or parts[2] == str(uid)):
                    return int(parts[3])
    except OSError:
        pass
    return uid if name.isdigit() else 0


def enter(spec: dict, cgroup_fds: list[int]) -> None:
    """Become the container's process: called in the child that will exec the command
    (already PID 1 of a new PID namespace when isolated). Never returns on success."""
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in spec["env"])
    workdir = spec.get("workdir") or "/"
    if spec["isolated"]:
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        root = prepare_root(spec)
        _mount_special(root, bool(spec.get("tty")))
        mount_etc_files(root, spec.get("etc_files") or {})
        from flock.agent.runtimes.exec import rootfs_mounts  # it builds on this module
        rootfs_mounts.apply(root, spec)
        socket.sethostname(spec["hostname"])
        os.chroot(root)
        os.makedirs(workdir, exist_ok=True)
        os.chdir(workdir)
    else:
        base = spec["image_rootfs"] + workdir
        os.chdir(base if os.path.isdir(base) else spec["image_rootfs"])
    uid, gid = _lookup_user(spec.get("user", ""))
    for fd in cgroup_fds:
        os.write(fd, b"0")
        os.close(fd)
    if gid:
        os.setgroups([gid])
        os.setgid(gid)
    if uid:
        os.setuid(uid)
    argv = spec["argv"]
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__" and sys.argv[1:] == ["--probe"]:
    sys.exit(_probe_here())
