"""Flock programs as real processes for integration tests: agents (exec runtime),
managers, the token service. Each is stopped by PID; `kill9` simulates a crash, and
`kill_shims` the loss of the machine's containers with it."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from flock.busybox import busybox_rootfs_tar
from tests.support.ports import free_port

REPO = pathlib.Path(__file__).resolve().parents[2]




def cmdline(pid: int) -> list[bytes] | None:
    """A process's argv, or None once it is gone: processes end between listing /proc and
    reading it, so a test that looks at other processes must not trip on that."""
    try:
        raw = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.split(b"\0")[:-1] if raw else []


def alive(pid: int) -> bool:
    """Whether `pid` still runs: False once it is gone or a zombie (ended, not reaped)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_for(check: Callable[[], object], timeout: float, what: str, step: float = 0.1):
    """Poll `check` until it returns something true; AssertionError naming `what`."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Proc:
    """One `python -m flock ...` child, logging to a file."""

    def __init__(self, name: str, args: list[str], folder: pathlib.Path,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        self.args = args
        self.log = folder / f"{name}.log"
        self.env = env or {}
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flock", *self.args], cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
                     **self.env})
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill9(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=5)


class Agent(Proc):
    """`flock join --runtime exec` with its own state dir."""

    def __init__(self, name: str, folder: pathlib.Path, discovery: str,
                 heartbeat: str = "1s", ttl: str = "4s", extra: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.state_dir = folder / name
        self.state_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(name, [
            "join", "--advertise", f"127.0.0.1:{self.port}", "--runtime", "exec",
            "--name", name, "--state-dir", str(self.state_dir), "--heartbeat", heartbeat,
            "--ttl", ttl, *(extra or []), discovery], folder, env)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def kill_shims(self) -> None:
        """Kill every container (and its supervisor) of this agent: a machine failure."""
        from tests.support.exec_runtime import kill_containers

        kill_containers(self.state_dir)

    def cleanup(self) -> None:
        """Stopped, its containers killed, and what they held on the machine removed:
        cgroups, and the exec runtime's bridge, which an agent stopped with containers
        still running keeps for its next start."""
        from tests.support.exec_network import remove_leftovers
        from tests.support.exec_runtime import remove_cgroups

        self.stop()
        self.kill_shims()
        time.sleep(0.2)
        remove_cgroups(self.state_dir)
        for network in self.state_dir.glob("**/network.json"):
            remove_leftovers(network.parent)


class Manager(Proc):
    """`flock manage` with a temporary folder of its own (TMPDIR): a manager makes its
    private socket's folder there (manager/app.py), which one killed by `kill9` cannot
    remove, so the test removes it once the manager is gone."""

    def __init__(self, name: str, folder: pathlib.Path, discovery: str,
                 extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        super().__init__(name, ["manage", "-H", f"tcp://127.0.0.1:{self.port}",
                                "--heartbeat", "1s", *(extra or []), discovery], folder, env)
        self.tmp = ""

    def start(self) -> Manager:
        self._remove_tmp()  # a manager started again after it ended on its own
        self.tmp = tempfile.mkdtemp(prefix="flock-test-")  # short: a socket path in it
        self.env = {**self.env, "TMPDIR": self.tmp}
        return super().start()

    def stop(self) -> None:
        super().stop()
        self._remove_tmp()

    def kill9(self) -> None:
        super().kill9()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self.tmp and not self.alive:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = ""

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: object | None = None,
            raw: bytes | None = None, timeout: float = 30) -> tuple[int, object]:
        return api(f"http://{self.addr}", method, path, body, raw, timeout)

    def docker(self, *args: str, check: bool = True) -> str:
        """The docker CLI against this manager; its stdout, stripped (`check`: it must
        succeed, its stderr in the failure)."""
        result = subprocess.run(["docker", "-H", f"tcp://{self.addr}", *args],
                                capture_output=True, text=True, timeout=60)
        if check:
            assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def info(self) -> dict:
        try:
            status, info = self.api("GET", "/info", timeout=5)
        except OSError:
            return {}
        return info if status == 200 and isinstance(info, dict) else {}

    def nodes(self) -> dict[str, str]:
        """Node name -> Status from `docker info`'s SystemStatus."""
        rows = self.info().get("SystemStatus") or []
        out, name = {}, None
        for key, value in rows:
            if key.startswith(" ") and not key.startswith("  "):
                name = key.strip()
            elif key.strip() == "└ Status" and name is not None:
                out[name] = value
        return out

    def role(self) -> dict[str, str]:
        rows = self.info().get("SystemStatus") or []
        return {k: v for k, v in rows if k in ("Role", "Primary")}

    def import_busybox(self) -> None:
        status, answer = self.api("POST", "/images/create?fromSrc=-&repo=busybox&tag=latest",
                                  raw=busybox_rootfs_tar(), timeout=120)
        assert status == 200 and "error" not in str(answer), answer


def api(base: str, method: str, path: str, body: object | None = None,
        raw: bytes | None = None, timeout: float = 30) -> tuple[int, object]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            payload, status = answer.read(), answer.status
    except urllib.error.HTTPError as err:
        payload, status = err.read(), err.code
    try:
        return status, json.loads(payload) if payload else None
    except ValueError:
        return status, payload.decode(errors="replace")
