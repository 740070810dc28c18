"""The per-container supervisor: `python -m flock.agent.runtimes.exec.shim <container dir>`.

It detaches from the runtime (its own session, re-parented to init), so containers keep
running when the agent restarts. It starts the command (isolated when the spec says so),
tells the runtime the outcome with one JSON line on stdout, then copies the command's
output into the json-file log and records the exit code and time in exit.json.

It also owns the container's stdin (a pipe, or the pty with a TTY) and serves attaches
on `attach.sock` in the container's folder (stream_hub), so that attaching, stdin and
TTY resizing keep working for containers started before an agent restart. Attaches made
before `start` (`docker run`) are waited for before the command runs."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import selectors
import signal
import sys
import termios
import time

from flock.agent.runtimes.exec import attach_socket, isolation
from flock.agent.runtimes.exec.store import write_json_atomic
from flock.agent.runtimes.exec.stream_hub import StreamHub
from flock.agent.runtimes.exec.timefmt import now_rfc, rfc3339nano
from flock.agent.runtimes.exec.tty import set_winsize
from flock.docker_compat.stdcopy import STREAM_IDS

LINE_MAX = 16 * 1024
DRAIN_SECONDS = 2.0
HOLD_SECONDS = 5.0  # longest wait for the attaches made before `start`


class SpawnError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat: tells a live process from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            text = fh.read()
    except OSError:
        return 0
    return int(text.rsplit(")", 1)[1].split()[19])


def _child(spec: dict, stdio: tuple[int, int, int], cgroup_fds: list[int],
           err_w: int, pid_w: int) -> None:
    """Runs in the forked child; exits or execs, never returns."""
    try:
        if spec["isolated"]:
            if spec.get("netns"):
                isolation.join_netns(spec["netns"])
            isolation.unshare(isolation.CONTAINER_NAMESPACES)
            grandchild = os.fork()
            if grandchild:
                os.write(pid_w, str(grandchild).encode())
                os._exit(0)
        else:
            os.write(pid_w, str(os.getpid()).encode())
        os.setsid()
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        if spec.get("tty"):
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        isolation.enter(spec, cgroup_fds)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the shim
        os.write(err_w, json.dumps(_describe(spec, exc)).encode())
        os._exit(127)
    os._exit(127)


def _describe(spec: dict, exc: BaseException) -> dict:
    """The Engine's wording for a command that cannot start, and its exit code."""
    cmd = spec["argv"][0]
    if isinstance(exc, FileNotFoundError):
        if "/" in cmd:
            return {"message": f'exec: "{cmd}": stat {cmd}: no such file or directory',
                    "code": 127}
        return {"message": f'exec: "{cmd}": executable file not found in $PATH', "code": 127}
    if isinstance(exc, PermissionError):
        return {"message": f'exec: "{cmd}": permission denied', "code": 126}
    return {"message": f"starting container process: {exc}", "code": 127}


def spawn(spec: dict, stdio: tuple[int, int, int], cgroup_fds: list[int]) -> int:
    """Start the command; returns its host pid or raises SpawnError."""
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(err_r)
        os.close(pid_r)
        _child(spec, stdio, cgroup_fds, err_w, pid_w)
    os.close(err_w)
    os.close(pid_w)
    if spec["isolated"]:
        os.waitpid(child, 0)  # the middle process exits once PID 1 exists
    raw_pid = _read_all(pid_r)
    error = _read_all(err_r)
    if error or not raw_pid:
        _reap_everything()
        info = json.loads(error) if error else {"message": "container process did not start",
                                                "code": 127}
        raise SpawnError(info["message"], info["code"])
    return int(raw_pid)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _reap_everything() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


class LogWriter:
    """json-file lines: split on newlines, long lines cut at 16 KiB as dockerd does."""

    def __init__(self, path: pathlib.Path) -> None:
        self.fh = open(path, "ab", buffering=0)
        self.partial: dict[str, bytes] = {}

    def feed(self, stream: str, data: bytes) -> None:
        buf = self.partial.get(stream, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        for line in lines:
            self._write(stream, line + b"\n")
        while len(rest) >= LINE_MAX:
            self._write(stream, rest[:LINE_MAX])
            rest = rest[LINE_MAX:]
        self.partial[stream] = rest

    def flush(self, stream: str) -> None:
        rest = self.partial.pop(stream, b"")
        if rest:
            self._write(stream, rest)

    def _write(self, stream: str, raw: bytes) -> None:
        entry = {"log": raw.decode("utf-8", "replace"), "stream": stream,
                 "time": rfc3339nano(time.time_ns())}
        self.fh.write(json.dumps(entry).encode() + b"\n")


def supervise(pid: int, spec: dict, streams: dict[int, str], log: LogWriter,
              hub: StreamHub) -> int:
    """Copy output to the log and the attached clients until the command ended and its
    pipes are drained; the exit code."""
    sel = hub.sel
    open_fds = set(streams)

    def reader(fd: int):
        def on_ready(mask: int) -> None:
            try:
                data = os.read(fd, 65536)
            except OSError as exc:  # a pty answers EIO once the other side is gone
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if data:
                log.feed(streams[fd], data)
                hub.broadcast(STREAM_IDS[streams[fd]], data)
            else:
                sel.unregister(fd)
                os.close(fd)
                open_fds.discard(fd)
                log.flush(streams[fd])
        return on_ready

    for fd in streams:
        sel.register(fd, selectors.EVENT_READ, reader(fd))
    status: int | None = None
    deadline = 0.0
    while True:
        if status is None:
            status = _reap(pid)
            if status is not None:
                deadline = time.monotonic() + DRAIN_SECONDS
                if not spec["isolated"]:
                    _kill_group(pid)
        if status is not None and (not open_fds or time.monotonic() > deadline):
            break
        for key, mask in sel.select(0.1):
            key.data(mask)
    for stream in set(streams.values()):
        log.flush(stream)
    if status < 0:
        return 137
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _reap(pid: int) -> int | None:
    found = None
    while True:
        try:
            child, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found if found is not None else -1
        if child == 0:
            return found
        if child == pid:
            found = status


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


class Stdio:
    """The child's (stdin, stdout, stderr), the shim's read ends by stream name, the fds
    to close in the shim after the fork, and the shim's end of the container's stdin."""

    def __init__(self, spec: dict) -> None:
        if spec.get("tty"):
            master, slave = os.openpty()
            size = spec.get("console_size") or [0, 0]
            if size and all(size):
                set_winsize(master, int(size[0]), int(size[1]))
            self.child = (slave, slave, slave)
            self.streams = {master: "stdout"}
            self.to_close = [slave]
            self.stdin = os.dup(master) if spec.get("open_stdin") else None
            self.tty = master
            return
        if spec.get("open_stdin"):
            stdin_r, self.stdin = os.pipe()
        else:
            stdin_r, self.stdin = os.open(os.devnull, os.O_RDONLY), None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.child = (stdin_r, out_w, err_w)
        self.streams = {out_r: "stdout", err_r: "stderr"}
        self.to_close = [stdin_r, out_w, err_w]
        self.tty = None


def _report(message: dict) -> None:
    """Tell the runtime how the start went, then let go of its pipe."""
    os.write(1, json.dumps(message).encode() + b"\n")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)


def run(folder: pathlib.Path) -> None:
    spec = json.loads((folder / "spec.json").read_text())
    cid = spec["id"]
    isolation.set_child_subreaper()
    try:
        isolation.setup_cgroups(cid, spec.get("cgroups", {}))
        cgroup_fds = [os.open(isolation.cgroup_dir(c, cid) / "cgroup.procs",
                              os.O_WRONLY | os.O_CLOEXEC) for c in spec.get("cgroups", {})]
    except OSError as exc:
        print(f"cgroups not applied: {exc}", file=sys.stderr)
        cgroup_fds = []
    stdio = Stdio(spec)
    hub = StreamHub(selectors.DefaultSelector(), attach_socket.listen(folder),
                    tty=bool(spec.get("tty")), stdin_fd=stdio.stdin,
                    stdin_once=bool(spec.get("stdin_once")), tty_fd=stdio.tty)
    hub.hold(int(spec.get("attach_hold") or 0), HOLD_SECONDS)
    try:
        pid = spawn(spec, stdio.child, cgroup_fds)
    except SpawnError as exc:
        hub.finish(attach_socket.path(folder))
        write_json_atomic(folder / "exit.json", {
            "ExitCode": exc.code, "Error": str(exc), "FinishedAt": now_rfc(),
            "StartFailed": True, "OOMKilled": False})
        _report({"error": str(exc), "code": exc.code})
        _cleanup_cgroups(cid)
        return
    finally:
        for fd in stdio.to_close + cgroup_fds:
            os.close(fd)
    write_json_atomic(folder / "state.json", {
        "Pid": pid, "PidStart": process_start_time(pid), "ShimPid": os.getpid(),
        "ShimStart": process_start_time(os.getpid()), "StartedAt": now_rfc()})
    _report({"pid": pid})
    code = supervise(pid, spec, stdio.streams, LogWriter(folder / "container.log"), hub)
    oom = code == 137 and isolation.oom_killed(cid)
    hub.finish(attach_socket.path(folder))
    write_json_atomic(folder / "exit.json", {
        "ExitCode": code, "Error": "", "FinishedAt": now_rfc(), "OOMKilled": oom})
    _cleanup_cgroups(cid)


def _cleanup_cgroups(cid: str) -> None:
    for _ in range(20):
        isolation.remove_cgroups(cid)
        if not any(isolation.cgroup_dir(c, cid).exists() for c in isolation.CONTROLLERS):
            return
        time.sleep(0.1)


def main(argv: list[str]) -> None:
    folder = pathlib.Path(argv[0])
    if os.fork():
        os._exit(0)  # the runtime's child ends at once; the shim is re-parented to init
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    log_fd = os.open(folder / "shim.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        run(folder)
    except BaseException as exc:  # noqa: BLE001 - the runtime must hear about it
        print(f"shim failed: {exc!r}", file=sys.stderr)
        try:
            _report({"error": f"shim failed: {exc}", "code": 127})
        except OSError:
            pass
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
