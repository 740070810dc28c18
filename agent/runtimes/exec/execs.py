"""Exec instances: `docker exec` as a process in a running container's namespaces, root
and cgroups.

The process is util-linux `nsenter --target <container pid> --pid --mount --uts --ipc
--root --wd`, a child of the runtime: like the Engine, which keeps exec configs in memory,
exec instances do not survive a runtime restart (their processes keep running in the
container). Without isolation the command runs as a plain process in the image's folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
from dataclasses import dataclass, field

from flock.agent.runtimes.exec import isolation
from flock.agent.runtimes.exec.containers import ContainerManager, merge_env
from flock.agent.runtimes.exec.errors import ApiError, bad_request, conflict, not_found
from flock.agent.runtimes.exec.fdstream import FdStream
from flock.agent.runtimes.exec.store import ContainerRecord
from flock.agent.runtimes.exec.tty import set_winsize

NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
SETSID = shutil.which("setsid") or "/usr/bin/setsid"
SHELL = "/bin/sh"
JOIN_SCRIPT = 'while [ "$1" != -- ]; do echo $$ > "$1"; shift; done; shift; exec "$@"'
NAMESPACE_FLAGS = ["--pid", "--mount", "--uts", "--ipc", "--net", "--root"]
KEEP_FINISHED = 256  # finished exec instances remembered for inspect


@dataclass
class ExecInstance:
    id: str
    container_id: str
    argv: list[str]
    user: str
    workdir: str
    env: list[str]
    tty: bool
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    privileged: bool
    detach_keys: str
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    size: tuple[int, int] | None = None
    master: int | None = None  # the pty's master while the process may still write
    process: asyncio.subprocess.Process | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def inspect(self) -> dict:
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": {"tty": self.tty, "entrypoint": self.argv[0],
                                  "arguments": self.argv[1:], "privileged": self.privileged,
                                  "user": self.user},
                "OpenStdin": self.attach_stdin, "OpenStderr": self.attach_stderr,
                "OpenStdout": self.attach_stdout, "CanRemove": False,
                "ContainerID": self.container_id, "DetachKeys": self.detach_keys,
                "Pid": self.pid}


def _command_of(body: dict) -> list[str]:
    cmd = body.get("Cmd")
    if isinstance(cmd, str):
        cmd = [cmd]
    if not isinstance(cmd, list) or not cmd or not all(isinstance(c, str) for c in cmd):
        raise bad_request("No exec command specified")
    return cmd


def _ids_in(root: str, user: str) -> tuple[int, int] | None:
    """uid and gid of Config.User looked up in the container's own passwd and group."""
    if not user:
        return None
    name, _, group = user.partition(":")

    def lookup(path: str, key: str) -> int:
        if key.isdigit():
            return int(key)
        with contextlib.suppress(OSError), open(root + path) as fh:
            for line in fh:
                parts = line.strip().split(":")
                if len(parts) > 3 and parts[0] == key:
                    return int(parts[2])
        kind = path.rsplit("/", 1)[1]
        raise ApiError(500, f"unable to find user {key}: no matching entries in {kind} file")

    uid = lookup("/etc/passwd", name)
    gid = lookup("/etc/group", group) if group else _primary_gid(root, uid)
    return uid, gid


def _primary_gid(root: str, uid: int) -> int:
    with contextlib.suppress(OSError), open(root + "/etc/passwd") as fh:
        for line in fh:
            parts = line.strip().split(":")
            if len(parts) > 3 and parts[2] == str(uid):
                return int(parts[3])
    return uid


def _wrapped(argv: list[str], cgroup_procs: list[str], tty: bool) -> list[str]:
    """The command behind small host tools that, in the child, join the container's
    cgroups and, with a TTY, start a session whose controlling terminal is the pty (job
    control, SIGWINCH). No Python runs between fork and exec: the runtime may be
    multi-threaded (the agent's gRPC), where that is unsafe."""
    joins = [SHELL, "-c", JOIN_SCRIPT, "join", *cgroup_procs, "--", *argv]
    return [SETSID, "--ctty", *joins] if tty else joins


class ExecManager:
    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers
        self.instances: dict[str, ExecInstance] = {}

    def get(self, exec_id: str) -> ExecInstance:
        inst = self.instances.get(exec_id)
        if inst is None:
            raise not_found(f"No such exec instance: {exec_id}")
        return inst

    def _running_container(self, ref: str) -> ContainerRecord:
        record = self.containers.get(ref)
        if not self.containers.state(record).running:
            raise conflict(f"Container {record.id} is not running")
        if self.containers.paused(record):
            raise conflict(f"Container {record.id} is paused, unpause the container before "
                           f"exec")
        return record

    def create(self, ref: str, body: dict) -> str:
        record = self._running_container(ref)
        argv = _command_of(body)
        env = body.get("Env") or []
        if not isinstance(env, list):
            raise bad_request("Env must be a list of KEY=value strings")
        inst = ExecInstance(
            id=secrets.token_hex(32), container_id=record.id, argv=argv,
            user=str(body.get("User") or record.config.get("User") or ""),
            workdir=str(body.get("WorkingDir") or ""),
            env=merge_env(record.config.get("Env"), [str(e) for e in env]),
            tty=bool(body.get("Tty")), attach_stdin=bool(body.get("AttachStdin")),
            attach_stdout=bool(body.get("AttachStdout")),
            attach_stderr=bool(body.get("AttachStderr")),
            privileged=bool(body.get("Privileged")),
            detach_keys=str(body.get("DetachKeys") or ""))
        self._prune()
        self.instances[inst.id] = inst
        self.containers.event(record, f"exec_create: {' '.join(argv)}", execID=inst.id)
        return inst.id

    def _prune(self) -> None:
        finished = [i for i in self.instances.values() if i.exit_code is not None]
        for inst in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self.instances[inst.id]

    # --- start -----------------------------------------------------------------------
    async def launch(self, inst: ExecInstance, attached: bool) -> None:
        """Start the process; its output is for the caller to read when `attached`."""
        if inst.running:
            raise conflict(f"Exec command {inst.id} is already running")
        if inst.started:
            raise conflict(f"Exec command {inst.id} has already run")
        record = self._running_container(inst.container_id)
        pid = self.containers.state(record).pid
        argv, cwd = self._command(inst, record, pid)
        inst.started = True
        try:
            inst.process = await self._spawn(inst, record, argv, cwd, attached)
        except OSError as exc:
            inst.exit_code = 126
            inst.done.set()
            raise ApiError(500, f"OCI runtime exec failed: {exc}") from None
        inst.pid = inst.process.pid
        inst.running = True
        self.containers.event(record, f"exec_start: {' '.join(inst.argv)}", execID=inst.id)
        asyncio.get_running_loop().create_task(self._watch(inst, record))
        if inst.tty and not attached:
            asyncio.get_running_loop().create_task(self._discard_tty(inst))

    def _command(self, inst: ExecInstance, record: ContainerRecord, pid: int
                 ) -> tuple[list[str], str | None]:
        if not self.containers.isolated:
            rootfs = self.containers.rootfs_of(record)
            cwd = rootfs + (inst.workdir or record.config.get("WorkingDir") or "/")
            return list(inst.argv), cwd if os.path.isdir(cwd) else rootfs
        root = f"/proc/{pid}/root"
        argv = [NSENTER, f"--target={pid}", *NAMESPACE_FLAGS]
        argv.append(f"--wd={root}{inst.workdir}" if inst.workdir else "--wd")
        ids = _ids_in(root, inst.user)
        if ids is not None:
            argv += [f"--setuid={ids[0]}", f"--setgid={ids[1]}"]
        return [*argv, "--", *inst.argv], None

    async def _spawn(self, inst: ExecInstance, record: ContainerRecord, argv: list[str],
                     cwd: str | None, attached: bool) -> asyncio.subprocess.Process:
        folders = [isolation.cgroup_dir(c, record.id) for c in isolation.CONTROLLERS]
        procs = [str(folder / "cgroup.procs") for folder in folders if folder.is_dir()]
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in inst.env)
        env.setdefault("HOSTNAME", record.config.get("Hostname", ""))
        env.setdefault("HOME", "/root")
        pipe = asyncio.subprocess.PIPE
        devnull = asyncio.subprocess.DEVNULL
        if inst.tty:
            master, slave = os.openpty()
            env.setdefault("TERM", "xterm")
            if inst.size:
                set_winsize(master, *inst.size)
            try:
                proc = await asyncio.create_subprocess_exec(
                    *_wrapped(argv, procs, True), stdin=slave, stdout=slave, stderr=slave,
                    env=env, cwd=cwd)
            except OSError:
                os.close(master)
                raise
            finally:
                os.close(slave)
            os.set_blocking(master, False)
            inst.master = master
            return proc
        return await asyncio.create_subprocess_exec(
            *_wrapped(argv, procs, False),
            stdin=pipe if attached and inst.attach_stdin else devnull,
            stdout=pipe if attached and inst.attach_stdout else devnull,
            stderr=pipe if attached and inst.attach_stderr else devnull,
            env=env, cwd=cwd)

    async def _watch(self, inst: ExecInstance, record: ContainerRecord) -> None:
        assert inst.process is not None
        code = await inst.process.wait()
        inst.exit_code = 128 - code if code < 0 else code
        inst.running = False
        self.containers.event(record, "exec_die", execID=inst.id, exitCode=str(inst.exit_code))
        inst.done.set()

    async def _discard_tty(self, inst: ExecInstance) -> None:
        """A detached exec with a TTY: nobody reads, so read and drop (the Engine does)."""
        assert inst.master is not None
        stream = FdStream(inst.master)
        while await stream.read():
            pass
        self.close_tty(inst)

    def close_tty(self, inst: ExecInstance) -> None:
        if inst.master is not None:
            os.close(inst.master)
            inst.master = None

    # --- resize ----------------------------------------------------------------------
    def resize(self, inst: ExecInstance, height: int, width: int) -> None:
        """Before the start the size is kept for the pty to be made."""
        inst.size = (height, width)
        if inst.master is not None:
            set_winsize(inst.master, height, width)
