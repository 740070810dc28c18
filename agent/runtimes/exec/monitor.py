"""`top` and `stats` of a running container, in the Engine's JSON shapes.

A container's processes are those in its PID namespace (isolated) or its session (plain
processes). `top` runs the host's `ps` and keeps the rows of those PIDs, as dockerd does;
`stats` reads memory from the container's memory cgroup and CPU time from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time

from aiohttp import web

from flock.agent.runtimes.exec import isolation
from flock.agent.runtimes.exec.containers import ContainerManager
from flock.agent.runtimes.exec.context import CORE
from flock.agent.runtimes.exec.errors import ApiError, bad_request, conflict
from flock.agent.runtimes.exec.jsonresp import json_response
from flock.agent.runtimes.exec.store import ContainerRecord
from flock.agent.runtimes.exec.timefmt import ZERO_TIME, rfc3339nano

TICKS = os.sysconf("SC_CLK_TCK")
STATS_INTERVAL = 1.0


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()


def container_pids(pid: int, isolated: bool) -> list[int]:
    """The PIDs (host view) of every process of the container whose PID 1 is `pid`."""
    try:
        marker = os.readlink(f"/proc/{pid}/ns/pid") if isolated else _stat_fields(pid)[3]
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            mine = os.readlink(f"/proc/{entry}/ns/pid") if isolated \
                else _stat_fields(int(entry))[3]
            if mine == marker:
                found.append(int(entry))
    return sorted(found)


def _running(manager: ContainerManager, request: web.Request) -> tuple[ContainerRecord, int]:
    record = manager.get(request.match_info["id"])
    state = manager.state(record)
    if not state.running:
        raise conflict(f"Container {record.id} is not running")
    return record, state.pid


def top_table(ps_output: str, pids: list[int]) -> dict:
    """dockerd's parsing of `ps` output: the header gives the titles and the PID column;
    the last column (the command) keeps its spaces."""
    lines = [line for line in ps_output.splitlines() if line.strip()]
    if not lines:
        raise ApiError(500, "ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise ApiError(500, f"Couldn't find PID field in ps output: {lines[0]}")
    column = titles.index("PID")
    wanted = set(pids)
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        with contextlib.suppress(ValueError, IndexError):
            if int(fields[column]) in wanted:
                processes.append(fields)
    return {"Titles": titles, "Processes": processes}


async def handle_top(request: web.Request) -> web.Response:
    manager: ContainerManager = request.app[CORE].containers
    record, pid = _running(manager, request)
    args = request.query.get("ps_args", "") or "-ef"
    pids = await asyncio.to_thread(container_pids, pid, manager.isolated)
    done = await asyncio.to_thread(subprocess.run, ["ps", *args.split()],
                                   capture_output=True, text=True, timeout=20)
    if done.returncode != 0:
        raise bad_request(f"Error running ps: {done.stderr.strip() or done.returncode}")
    return json_response(top_table(done.stdout, pids))


def _read_int(path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _memory(cid: str) -> dict:
    folder = isolation.cgroup_dir("memory", cid)
    if not folder.is_dir():
        return {}
    stats = {}
    with contextlib.suppress(OSError):
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                stats[key] = int(value)
    return {"usage": _read_int(folder / "memory.usage_in_bytes"),
            "max_usage": _read_int(folder / "memory.max_usage_in_bytes"),
            "limit": min(_read_int(folder / "memory.limit_in_bytes"), _host_memory()),
            "failcnt": _read_int(folder / "memory.failcnt"), "stats": stats}


def _host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu(pids: list[int]) -> dict:
    user = system = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            user += int(fields[11])
            system += int(fields[12])
    to_ns = 10**9 // TICKS
    with open("/proc/stat") as fh:
        total = sum(int(v) for v in fh.readline().split()[1:8])
    return {"cpu_usage": {"total_usage": (user + system) * to_ns,
                          "usage_in_kernelmode": system * to_ns,
                          "usage_in_usermode": user * to_ns},
            "system_cpu_usage": total * to_ns, "online_cpus": os.cpu_count() or 1,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def sample(record: ContainerRecord, pid: int, isolated: bool) -> dict:
    pids = container_pids(pid, isolated)
    return {"read": rfc3339nano(time.time_ns()), "name": f"/{record.name}", "id": record.id,
            "pids_stats": {"current": len(pids)}, "num_procs": 0, "storage_stats": {},
            "blkio_stats": {"io_service_bytes_recursive": None, "io_serviced_recursive": None,
                            "io_queue_recursive": None, "io_service_time_recursive": None,
                            "io_wait_time_recursive": None, "io_merged_recursive": None,
                            "io_time_recursive": None, "sectors_recursive": None},
            "cpu_stats": _cpu(pids), "memory_stats": _memory(record.id)}


async def handle_stats(request: web.Request) -> web.StreamResponse:
    manager: ContainerManager = request.app[CORE].containers
    record, pid = _running(manager, request)
    stream = request.query.get("stream", "1").lower() not in ("0", "false", "no")
    one_shot = request.query.get("one-shot", "").lower() in ("1", "true", "yes")
    previous = _empty_previous()
    if not stream and not one_shot:
        previous = await asyncio.to_thread(sample, record, pid, manager.isolated)
        await asyncio.sleep(STATS_INTERVAL)
    if not stream:
        current = await asyncio.to_thread(sample, record, pid, manager.isolated)
        return json_response(_with_previous(current, previous))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    with contextlib.suppress(ConnectionError):
        while manager.state(record).running and record.id in manager.records:
            current = await asyncio.to_thread(sample, record, pid, manager.isolated)
            await resp.write(json.dumps(_with_previous(current, previous)).encode() + b"\n")
            previous = current
            await asyncio.sleep(STATS_INTERVAL)
    return resp


def _empty_previous() -> dict:
    return {"read": ZERO_TIME, "cpu_stats": {"cpu_usage": {"total_usage": 0},
                                             "system_cpu_usage": 0, "online_cpus": 0}}


def _with_previous(current: dict, previous: dict) -> dict:
    return {**current, "preread": previous["read"], "precpu_stats": previous["cpu_stats"]}


def routes() -> list[tuple[str, str, object]]:
    return [("GET", "/containers/{id}/top", handle_top),
            ("GET", "/containers/{id}/stats", handle_stats)]
