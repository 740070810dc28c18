"""Processes of the cluster: started detached with their output in a log file, known by
PID *and* start time (a PID the kernel hands out again is never taken for ours), stopped
by PID; and the mounts an engine may leave behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from localcluster.layout import Proc


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None when the process is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # fields 3.. (the name may hold spaces)
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(proc: Proc) -> bool:
    return proc.pid > 0 and start_time(proc.pid) == proc.start


def spawn(role: str, label: str, cmd: list[str], log: Path, netns: str = "",
          env: dict[str, str] | None = None, addr: str = "") -> tuple[Proc, subprocess.Popen]:
    """Start `cmd` in a session of its own, stdin from /dev/null, output to `log`; inside
    `netns` through `nsenter`, which execs it, so the PID is the program's. (Not `ip netns
    exec`: its mount namespace with a fresh /sys hides the cgroup mounts dockerd needs.)"""
    if netns:
        cmd = ["nsenter", f"--net=/run/netns/{netns}", "--", *cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True,
                                 env={**os.environ, **(env or {})})
    start = start_time(popen.pid) or 0
    return Proc(role=role, label=label, pid=popen.pid, start=start, netns=netns,
                log=str(log), addr=addr), popen


def _reap(pid: int) -> None:
    """Collect a child of ours that exited (the processes `up` stops on a failure)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _wait_gone(pids: list[int], check, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    left = pids
    while True:
        for pid in left:
            _reap(pid)
        left = [pid for pid in left if check(pid)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.1)


def stop(procs: list[Proc], timeout: float = 15) -> list[Proc]:
    """SIGTERM, then SIGKILL after `timeout`. Returns the ones that had to be killed."""
    live = [p for p in procs if alive(p)]
    by_pid = {p.pid: p for p in live}
    for proc in live:
        _signal(proc.pid, signal.SIGTERM)
    left = _wait_gone(list(by_pid), lambda pid: alive(by_pid[pid]), timeout)
    for pid in left:
        _signal(pid, signal.SIGKILL)
    _wait_gone(left, lambda pid: alive(by_pid[pid]), 5)
    return [by_pid[pid] for pid in left]


def kill(pids: set[int]) -> None:
    """SIGKILL processes found without a record (left in a namespace)."""
    starts = {pid: start for pid in pids if (start := start_time(pid)) is not None}
    for pid in starts:
        _signal(pid, signal.SIGKILL)
    _wait_gone(list(starts), lambda pid: start_time(pid) == starts[pid], 5)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def netns_pids(netns: str) -> set[int]:
    """Processes whose network namespace is `netns` (engines, agents, container shims)."""
    result = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True,
                            timeout=30)
    return {int(word) for word in result.stdout.split() if word.isdigit()}


def descendants(roots: set[int]) -> set[int]:
    """`roots` and every process below them: a container's processes live in network
    namespaces of their own, but under a shim that is in the host's namespace."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def cgroups_of(pids: set[int]) -> set[str]:
    """The cgroup paths (as in /proc/PID/cgroup, e.g. /docker/<id>) of containers among
    `pids`: a container killed without its engine leaves them behind, empty."""
    found = set()
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            path = line.split(":", 2)[-1]
            if path.startswith("/docker/") and path.count("/") == 2:
                found.add(path)
    return found


def remove_cgroups(paths: set[str], root: Path = Path("/sys/fs/cgroup")) -> int:
    """rmdir those cgroups in every hierarchy (only empty ones can go); how many went."""
    removed = 0
    for path in paths:
        for folder in root.glob(f"*{path}"):
            try:
                folder.rmdir()
                removed += 1
            except OSError:
                pass
    return removed


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path` in this mount namespace, deepest first."""
    root = os.path.realpath(path)
    found = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            point = _unescape(line.split()[1])
            if point == root or point.startswith(root + "/"):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)


def unmount_under(path: Path) -> list[str]:
    """Unmount (lazily, so that a busy one goes as soon as it is free) everything at or
    below `path`. Returns the mount points that were there."""
    points = mounts_under(path)
    for point in points:
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    return points
