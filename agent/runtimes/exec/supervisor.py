"""The runtime's side of the shims: launch one per start, read what it wrote to learn a
container's state, and signal the container's process (checked against its start time,
so a reused pid is never hit)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass

from flock.agent.runtimes.exec.isolation import python_path
from flock.agent.runtimes.exec.shim import process_start_time
from flock.agent.runtimes.exec.store import ContainerStore, write_json_atomic
from flock.agent.runtimes.exec.timefmt import ZERO_TIME, now_rfc

SHIM_LOST = ("the container's shim died without recording an exit code; "
             "the process was killed (exit code 137 assumed)")


@dataclass
class RunState:
    status: str  # created | running | exited
    pid: int = 0
    exit_code: int = 0
    error: str = ""
    started_at: str = ZERO_TIME
    finished_at: str = ZERO_TIME
    oom_killed: bool = False

    @property
    def running(self) -> bool:
        return self.status == "running"


def alive(pid: int, start: int) -> bool:
    """A process that exists, is the one we started, and is not a zombie."""
    if pid <= 0 or process_start_time(pid) != start:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class Supervisor:
    def __init__(self, store: ContainerStore) -> None:
        self.store = store

    def launch(self, cid: str, spec: dict) -> dict:
        """Start a shim for the container (blocking: run it in a thread). Returns the
        shim's report: {"pid": n} or {"error": message, "code": n}."""
        folder = self.store.dir(cid)
        self.store.clear_run(cid)
        write_json_atomic(folder / "spec.json", spec)
        proc = subprocess.Popen(
            [sys.executable, "-m", "flock.agent.runtimes.exec.shim", str(folder)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True, env={**os.environ, "PYTHONPATH": python_path()})
        try:
            line = proc.stdout.readline()
        finally:
            proc.stdout.close()
            proc.wait()
        if not line:
            shim_log = (folder / "shim.log").read_text(errors="replace")[-500:]
            return {"error": f"the shim did not start: {shim_log}", "code": 127}
        return json.loads(line)

    def state(self, cid: str) -> RunState:
        exited = self.store.exit_state(cid)
        run = self.store.run_state(cid)
        if exited is None and run is not None and not alive(run["ShimPid"], run["ShimStart"]):
            exited = self.store.exit_state(cid) or self._record_lost(cid, run)
        if exited is not None:
            started = run["StartedAt"] if run else ZERO_TIME
            status = "created" if exited.get("StartFailed") else "exited"
            return RunState(status, 0, exited["ExitCode"], exited.get("Error", ""),
                            started, exited["FinishedAt"] if run else ZERO_TIME,
                            bool(exited.get("OOMKilled")))
        if run is not None:
            return RunState("running", run["Pid"], 0, "", run["StartedAt"])
        return RunState("created")

    def _record_lost(self, cid: str, run: dict) -> dict:
        """The shim is gone and wrote nothing: kill what is left, call it exit 137."""
        if alive(run["Pid"], run["PidStart"]):
            try:
                os.kill(run["Pid"], signal.SIGKILL)
            except OSError:
                pass
        data = {"ExitCode": 137, "Error": SHIM_LOST, "FinishedAt": now_rfc(),
                "OOMKilled": False}
        self.store.write_exit(cid, data)
        return data

    def signal(self, cid: str, signum: int) -> bool:
        run = self.store.run_state(cid)
        if run is None or self.store.exit_state(cid) is not None:
            return False
        if not alive(run["Pid"], run["PidStart"]):
            return False
        try:
            os.kill(run["Pid"], signum)
        except ProcessLookupError:
            return False
        return True
