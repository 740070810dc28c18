"""Runs the health checks of running containers: one task per container start, probing
every interval through the `docker exec` path (ExecManager: the container's
namespaces, root and cgroups), keeping State.Health in the container's folder and
announcing each change with a `health_status: <status>` event, as dockerd does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

from flock.agent.runtimes.exec import health
from flock.agent.runtimes.exec.containers import ContainerManager
from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.exec.execs import ExecInstance, ExecManager
from flock.agent.runtimes.exec.store import ContainerRecord
from flock.agent.runtimes.exec.timefmt import parse_rfc3339nano, rfc3339nano

log = logging.getLogger(__name__)
POLL = 0.2


class HealthMonitor:
    def __init__(self, containers: ContainerManager, execs: ExecManager) -> None:
        self.containers = containers
        self.execs = execs
        self.tasks: dict[str, tuple[str, asyncio.Task]] = {}  # id -> (StartedAt, task)

    async def run(self) -> None:
        """For the life of the runtime: containers start and stop while nobody asks."""
        try:
            while True:
                self._sync()
                await asyncio.sleep(POLL)
        finally:
            for _, task in self.tasks.values():
                task.cancel()

    def _sync(self) -> None:
        wanted: dict[str, str] = {}
        for record in list(self.containers.records.values()):
            if health.effective(record.config) is None:
                continue  # most containers: no state files read for them
            state = self.containers.state(record)
            if state.running:
                wanted[record.id] = state.started_at
        for cid, (started, task) in list(self.tasks.items()):
            if wanted.get(cid) != started or task.done():
                task.cancel()
                del self.tasks[cid]
        for cid, started in wanted.items():
            if cid not in self.tasks:
                record = self.containers.records[cid]
                task = asyncio.get_running_loop().create_task(self._probe_loop(record, started))
                self.tasks[cid] = (started, task)

    async def _probe_loop(self, record: ContainerRecord, started_at: str) -> None:
        check = health.effective(record.config)
        assert check is not None
        folder = self.containers.store.dir(record.id)
        state = health.starting(health.load(folder))
        health.save(folder, state)
        started_ns = parse_rfc3339nano(started_at)
        while True:
            await asyncio.sleep(check.interval / 1e9)
            if self.containers.paused(record):
                continue
            result = await self._probe(record, check)
            if result is None or record.id not in self.containers.records:
                continue
            since_start = parse_rfc3339nano(result["Start"]) - started_ns
            changed = health.record_result(state, result, check, since_start)
            health.save(folder, state)
            if changed:
                self.containers.event(record, f"health_status: {state['Status']}")

    async def _probe(self, record: ContainerRecord, check: health.Check) -> dict | None:
        """One run of the check: {Start, End, ExitCode, Output}; None when the container
        cannot be entered right now (it stopped meanwhile)."""
        try:
            exec_id = self.execs.create(record.id, {
                "Cmd": check.argv, "AttachStdout": True, "AttachStderr": True})
            inst = self.execs.get(exec_id)
            start = time.time_ns()
            await self.execs.launch(inst, attached=True)
        except ApiError as exc:
            log.debug("health check of %s not run: %s", record.id[:12], exc.message)
            return None
        output = bytearray()
        try:
            await asyncio.wait_for(_collect(inst, output), check.timeout / 1e9)
        except TimeoutError:
            _kill_tree(inst.pid)
            return {"Start": rfc3339nano(start), "End": rfc3339nano(time.time_ns()),
                    "ExitCode": -1, "Output": health.timeout_message(check)}
        return {"Start": rfc3339nano(start), "End": rfc3339nano(time.time_ns()),
                "ExitCode": inst.exit_code if inst.exit_code is not None else -1,
                "Output": health.clip_output(bytes(output))}


async def _collect(inst: ExecInstance, output: bytearray) -> None:
    """stdout and stderr into one buffer (as the Engine keeps them), then the exit."""
    assert inst.process is not None

    async def drain(stream: asyncio.StreamReader | None) -> None:
        while stream is not None and (chunk := await stream.read(65536)):
            if len(output) < health.MAX_OUTPUT:
                output.extend(chunk)

    await asyncio.gather(drain(inst.process.stdout), drain(inst.process.stderr))
    await inst.done.wait()


def _kill_tree(pid: int) -> None:
    """The probe and everything it started (nsenter forks into the PID namespace)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    doomed, queue = [], [pid]
    while queue:
        current = queue.pop()
        doomed.append(current)
        queue.extend(children.get(current, []))
    for victim in doomed:
        with contextlib.suppress(OSError):
            os.kill(victim, signal.SIGKILL)
