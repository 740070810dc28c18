"""Scale benchmark: N hollow agents, one manager, K containers through the Docker API.

Starts `flock hollow --agents N` (several processes past --per-fleet agents), then
`flock manage` on their addresses (a file:// discovery), as child processes; creates
and starts K containers with C in flight (aiohttp), lists them (`ps -a`), asks `info`,
and removes them. Prints the registration time, placements/s, p50/p99 create+start
latency, `ps -a` and `info` latency, the CPU each process spent per container, the
manager's RSS and the spread quality (containers per node).

    python bench/scale.py --agents 1000 --containers 30000 --concurrency 32
    python bench/scale.py --agents 10000 --containers 100000 --concurrency 32

The integration test tests/integration/test_hollow_scale.py drives the same Stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

REPO = pathlib.Path(__file__).resolve().parents[1]
IMAGE = "busybox"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process (all its threads), from /proc: the system
    part is where loopback sends deliver to their receiver and wake it, which a real
    network would not charge to this process."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def preemptions(pid: int) -> int:
    """Times the process's threads were switched out while they could run (another
    process took the core: here, mostly a fleet or client process it just woke)."""
    total = 0
    for status in pathlib.Path(f"/proc/{pid}/task").glob("*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    total += int(line.split()[1])
        except OSError:
            continue  # a thread that ended meanwhile
    return total


async def _metric_sums(base: str, prefix: str) -> Counter:
    """{label value: value} of the /metrics lines starting with `prefix` (which ends
    with the label's opening quote); empty without /metrics."""
    counts: Counter = Counter()
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as resp:
        text = await resp.text() if resp.status == 200 else ""
    for line in text.splitlines():
        if line.startswith(prefix):
            label, _, rest = line[len(prefix):].partition('"')
            counts[label] += float(rest.rpartition(" ")[2])
    return counts


async def call_carriers(base: str) -> Counter:
    """Connections the manager holds for agents' calls: call links and gRPC streams."""
    return await _metric_sums(base, 'flock_agent_call_carriers{carrier="')


async def agent_rpcs(base: str) -> Counter:
    """The manager's agent RPCs so far by method, from its /metrics (empty without)."""
    return await _metric_sums(base, 'flock_agent_rpc_duration_seconds_count{method="')


async def gc_pauses(base: str) -> tuple[Counter, Counter]:
    """The manager's garbage collections so far by generation: (counts, seconds)."""
    return (await _metric_sums(base, 'flock_gc_pause_seconds_count{generation="'),
            await _metric_sums(base, 'flock_gc_pause_seconds_sum{generation="'))


def healthy_nodes(info: dict) -> int:
    return sum(1 for key, value in info.get("SystemStatus") or []
               if key.strip() == "└ Status" and value == "Healthy")


@dataclass
class Stack:
    """A hollow fleet and a manager as child processes in `folder`; stop() kills both."""

    agents: int
    folder: pathlib.Path
    cpus: int = 2
    memory: str = "2g"
    heartbeat: str = "5s"
    manager_args: list[str] = field(default_factory=list)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    port: int = 0
    per_fleet: int = 2500

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flock", *args], cwd=REPO, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
        self.procs[name] = proc
        return proc

    def log(self, name: str, lines: int = 20) -> str:
        path = self.folder / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")

    def fleets(self) -> list[str]:
        """The names of the hollow processes started (their logs, CPU and RSS)."""
        return [name for name in self.procs if name.startswith("hollow")]

    def fleet_sizes(self) -> list[int]:
        """Agents per hollow process: one process serves at most `per_fleet`, since
        each agent costs it two file descriptors and one more per manager connection."""
        count = max(1, -(-self.agents // self.per_fleet))
        return [self.agents // count + (i < self.agents % count) for i in range(count)]

    async def start(self, progress: Callable[[str], None] = print,
                    timeout: float = 1800) -> dict[str, float]:
        """Start the fleets, then the manager on their addresses; the seconds until the
        fleets served and from the manager's start until every node was healthy."""
        started = time.monotonic()
        files = []
        for index, size in enumerate(self.fleet_sizes()):
            files.append(self.folder / f"fleet-{index}")
            files[-1].write_text("")
            self._spawn(f"hollow-{index}" if index else "hollow", [
                "hollow", "--agents", str(size), "--cpus", str(self.cpus), "--memory",
                self.memory, "--name-prefix", f"hollow{index}" if index else "hollow",
                "--discovery", f"file://{files[-1]}"])
        fleets = self.fleets()
        fleet_ready = await self._wait(
            lambda: all("ready " in self.log(n, 3) for n in fleets), timeout,
            "hollow agents serving")
        progress(f"{self.agents} hollow agents serving after {fleet_ready - started:.1f}s "
                 f"({len(fleets)} process{'es' if len(fleets) > 1 else ''})")
        discovery = self.folder / "cluster"
        discovery.write_text("".join(f.read_text() for f in files))
        self.port = _free_port()
        manager_started = time.monotonic()
        self._spawn("manager", ["manage", "-H", f"tcp://127.0.0.1:{self.port}",
                                "--heartbeat", self.heartbeat, *self.manager_args,
                                f"file://{discovery}"])
        seen = -1
        async with aiohttp.ClientSession() as session:
            async def all_healthy() -> bool:
                nonlocal seen
                try:
                    _, info, _ = await call(session, self.url, "GET", "/info")
                except aiohttp.ClientError:
                    return False
                count = healthy_nodes(info) if isinstance(info, dict) else 0
                if count != seen:
                    progress(f"  {count}/{self.agents} nodes healthy")
                    seen = count
                return count == self.agents

            done = await self._wait(all_healthy, timeout, "all nodes healthy", step=1.0)
        return {"fleet": fleet_ready - started, "registration": done - manager_started}

    async def _wait(self, check, timeout: float, what: str, step: float = 0.2) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check()
            ok = check()
            if asyncio.iscoroutine(ok):
                ok = await ok
            if ok:
                return time.monotonic()
            await asyncio.sleep(step)
        raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}:\n"
                           f"{self.log('manager')}")

    def manager_rss(self) -> int:
        return rss_bytes(self.procs["manager"].pid)

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each child process."""
        return {name: cpu_seconds(proc.pid) for name, proc in self.procs.items()}

    def profile(self, folder: pathlib.Path) -> list[subprocess.Popen]:
        """py-spy recorders on both processes until stopped (SIGINT); raw stacks go to
        FOLDER/<name>.txt. Empty when py-spy is not installed next to this Python."""
        spy = pathlib.Path(sys.executable).with_name("py-spy")
        if not spy.exists():
            return []
        return [subprocess.Popen([str(spy), "record", "--pid", str(proc.pid), "--format",
                                  "raw", "--rate", "200", "--nonblocking", "-o",
                                  str(folder / f"{name}.txt")],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for name, proc in self.procs.items()]

    def stop(self) -> None:
        for name in ["manager", *self.fleets()]:
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


async def call(session: aiohttp.ClientSession, base: str, method: str, path: str,
               body: object | None = None) -> tuple[int, object, float]:
    """(status, parsed JSON or None, seconds)."""
    began = time.perf_counter()
    async with session.request(method, base + path, json=body) as resp:
        raw = await resp.read()
        status = resp.status
    took = time.perf_counter() - began
    return status, (json.loads(raw) if raw else None), took


def container_body(memory: int = 0, cpus: float = 0, ports: list[int] | None = None) -> dict:
    host: dict = {}
    if memory:
        host["Memory"] = memory
    if cpus:
        host["NanoCpus"] = int(cpus * 1e9)
    if ports:
        host["PortBindings"] = {f"{p}/tcp": [{"HostPort": str(p)}] for p in ports}
    body: dict = {"Image": IMAGE, "Cmd": ["sleep", "1d"], "HostConfig": host}
    if ports:
        body["ExposedPorts"] = {f"{p}/tcp": {} for p in ports}
    return body


@dataclass
class LoadResult:
    ids: list[str]
    failures: list[tuple[int, object]]
    latencies: list[float]  # each create+start, as `docker run -d` waits for both
    seconds: float
    request_latencies: list[float] = field(default_factory=list)  # each API request

    @property
    def rate(self) -> float:
        return len(self.ids) / self.seconds if self.seconds else 0.0


async def create_and_start(base: str, count: int, concurrency: int, body: dict,
                           prefix: str = "c", progress: Callable[[str], None] | None = None
                           ) -> LoadResult:
    """`count` containers named PREFIX-i, create then start, `concurrency` in flight."""
    ids: list[str] = []
    failures: list[tuple[int, object]] = []
    latencies: list[float] = []
    requests: list[float] = []
    queue = iter(range(count))
    began = time.perf_counter()
    step = max(1, count // 10)

    async def worker(session: aiohttp.ClientSession) -> None:
        for index in queue:
            start = time.perf_counter()
            status, answer, _ = await call(session, base, "POST",
                                           f"/containers/create?name={prefix}-{index}", body)
            if status != 201:
                failures.append((status, answer))
                continue
            cid = answer["Id"]
            created = time.perf_counter()
            status, answer, _ = await call(session, base, "POST", f"/containers/{cid}/start")
            if status != 204:
                failures.append((status, answer))
                continue
            done = time.perf_counter()
            latencies.append(done - start)
            requests.extend((created - start, done - created))
            ids.append(cid)
            if progress and len(ids) % step == 0:
                elapsed = time.perf_counter() - began
                progress(f"  {len(ids)}/{count} started, {len(ids) / elapsed:.0f}/s")

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return LoadResult(ids, failures, latencies, time.perf_counter() - began, requests)


async def remove_all(base: str, ids: list[str], concurrency: int) -> tuple[int, float]:
    """(how many removals failed, seconds)."""
    queue = iter(ids)
    failed = 0
    began = time.perf_counter()

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal failed
        for cid in queue:
            status, _, _ = await call(session, base, "DELETE", f"/containers/{cid}?force=1")
            failed += status != 204

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return failed, time.perf_counter() - began


def node_of(entry: dict) -> str:
    """The node part of a classic `ps` name, "/node/container"."""
    return entry["Names"][0].split("/")[1]


def per_node(listing: list[dict], nodes: list[str] | None = None) -> Counter:
    counts = Counter({name: 0 for name in nodes or []})
    counts.update(node_of(entry) for entry in listing)
    return counts


def long_pauses(log: str) -> list[float]:
    """The manager's garbage collections of 100 ms or more, in ms, from its log
    (observability/gc_pauses.py writes one line for each)."""
    found = re.findall(r"garbage collection of generation \d stopped everything for (\d+) ms",
                       log)
    return [float(ms) for ms in found]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ------------------------------------------------------------------ the benchmark
async def bench(args) -> dict:
    folder = pathlib.Path(tempfile.mkdtemp(prefix="flock-scale-"))
    stack = Stack(args.agents, folder, cpus=args.cpus, memory=args.memory,
                  heartbeat=args.heartbeat, per_fleet=args.per_fleet)
    out: dict = {"agents": args.agents, "containers": args.containers,
                 "concurrency": args.concurrency}
    try:
        out.update(await stack.start(progress=print))
        print(f"registration: {out['registration']:.1f}s; manager RSS "
              f"{stack.manager_rss() / 2**20:.0f} MiB")
        out["rss_idle_mib"] = stack.manager_rss() / 2**20
        if args.settle > 0:
            print(f"settling {args.settle:g}s before placing")
            await asyncio.sleep(args.settle)
        out["settle_s"] = args.settle
        if args.profile:
            pathlib.Path(args.profile).mkdir(parents=True, exist_ok=True)
        spies = stack.profile(pathlib.Path(args.profile)) if args.profile else []
        rpcs_before = await agent_rpcs(stack.url)
        gc_before = await gc_pauses(stack.url)
        manager_pid = stack.procs["manager"].pid
        cpu_before, client_before = stack.cpu(), time.process_time()
        split_before, preempted_before = cpu_split(manager_pid), preemptions(manager_pid)
        result = await create_and_start(stack.url, args.containers, args.concurrency,
                                        container_body(), progress=print)
        cpu_after, client_after = stack.cpu(), time.process_time()
        split_after, preempted_after = cpu_split(manager_pid), preemptions(manager_pid)
        rpcs = await agent_rpcs(stack.url)
        rpcs.subtract(rpcs_before)
        out["carriers"] = dict(await call_carriers(stack.url))
        gc_counts, gc_seconds = await gc_pauses(stack.url)
        gc_counts.subtract(gc_before[0])
        gc_seconds.subtract(gc_before[1])
        out["gc"] = {gen: (int(gc_counts[gen]), gc_seconds[gen]) for gen in sorted(gc_counts)}
        out["rpcs_per_container"] = {k: round(v / max(1, len(result.ids)), 2)
                                     for k, v in rpcs.items() if v}
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(timeout=60)
        per = 1e3 / max(1, len(result.ids))
        out["cpu_ms_manager"] = (cpu_after["manager"] - cpu_before["manager"]) * per
        out["cpu_ms_hollow"] = sum(cpu_after[n] - cpu_before[n] for n in stack.fleets()) * per
        out["cpu_ms_client"] = (client_after - client_before) * per
        out["cpu_ms_manager_system"] = (split_after[1] - split_before[1]) * per
        out["manager_preempted_per_container"] = (preempted_after - preempted_before) * per / 1e3
        out["rss_hollow_mib"] = sum(rss_bytes(stack.procs[n].pid)
                                    for n in stack.fleets()) / 2**20
        out.update(placed=len(result.ids), failed=len(result.failures),
                   rate=result.rate, p50_ms=percentile(result.latencies, .5) * 1e3,
                   p99_ms=percentile(result.latencies, .99) * 1e3,
                   p999_ms=percentile(result.latencies, .999) * 1e3,
                   request_p50_ms=percentile(result.request_latencies, .5) * 1e3,
                   request_p99_ms=percentile(result.request_latencies, .99) * 1e3)
        if result.failures:
            print("first failure:", result.failures[0])
        out["rss_full_mib"] = stack.manager_rss() / 2**20
        async with aiohttp.ClientSession() as session:
            status, listing, out["ps_s"] = await call(session, stack.url, "GET",
                                                      "/containers/json?all=1")
            _, _, out["info_s"] = await call(session, stack.url, "GET", "/info")
        counts = per_node(listing if status == 200 else [])
        values = list(counts.values()) or [0]
        out.update(ps_count=len(listing) if status == 200 else -1, node_min=min(values),
                   node_max=max(values), node_stdev=statistics.pstdev(values))
        print("removing ...")
        failed, seconds = await remove_all(stack.url, result.ids, args.concurrency)
        out.update(remove_failed=failed, remove_rate=len(result.ids) / seconds)
        out["rss_end_mib"] = stack.manager_rss() / 2**20
        out["gc_long_ms"] = long_pauses(stack.log("manager", 1_000_000))
    finally:
        stack.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"logs kept in {folder}")
    return out


def report(out: dict) -> None:
    rows = [
        ("hollow fleet up", f"{out.get('fleet', 0):.1f} s"),
        ("registration (all healthy)", f"{out.get('registration', 0):.1f} s"
                                       + (f", then {out['settle_s']:g} s settling"
                                          if out.get("settle_s") else "")),
        ("placed / failed", f"{out.get('placed')} / {out.get('failed')}"),
        ("create+start rate", f"{out.get('rate', 0):.0f} /s"),
        ("latency p50 / p99 / p99.9",
         f"{out.get('p50_ms', 0):.1f} / {out.get('p99_ms', 0):.1f} / "
         f"{out.get('p999_ms', 0):.1f} ms (create+start)"),
        ("  each request", f"{out.get('request_p50_ms', 0):.1f} / "
                           f"{out.get('request_p99_ms', 0):.1f} ms (create, start)"),
        ("CPU per create+start",
         f"manager {out.get('cpu_ms_manager', 0):.2f} ms, hollow "
         f"{out.get('cpu_ms_hollow', 0):.2f} ms, this client "
         f"{out.get('cpu_ms_client', 0):.2f} ms"),
        ("  manager in the kernel", f"{out.get('cpu_ms_manager_system', 0):.2f} ms; "
                                    f"preempted {out.get('manager_preempted_per_container', 0):.2f}"
                                    " times per create+start"),
        ("agents' call carriers", ", ".join(
            f"{k} {v:.0f}" for k, v in sorted(out.get("carriers", {}).items()))),
        ("agent RPCs per container", ", ".join(
            f"{k} {v}" for k, v in sorted(out.get("rpcs_per_container", {}).items()))),
        ("manager GC while placing", ", ".join(
            f"gen{gen} {n} ({seconds * 1e3:.0f} ms)"
            for gen, (n, seconds) in out.get("gc", {}).items())),
        ("manager GC pauses >= 100 ms", f"{len(out.get('gc_long_ms', []))} (longest "
                                        f"{max(out.get('gc_long_ms') or [0]):.0f} ms, whole run)"),
        ("ps -a", f"{out.get('ps_s', 0) * 1e3:.0f} ms ({out.get('ps_count')} rows)"),
        ("info", f"{out.get('info_s', 0) * 1e3:.0f} ms"),
        ("manager RSS idle / full / end",
         f"{out.get('rss_idle_mib', 0):.0f} / {out.get('rss_full_mib', 0):.0f} / "
         f"{out.get('rss_end_mib', 0):.0f} MiB"),
        ("hollow RSS (all processes)", f"{out.get('rss_hollow_mib', 0):.0f} MiB"),
        ("per node min / max / stdev",
         f"{out.get('node_min')} / {out.get('node_max')} / {out.get('node_stdev', 0):.2f}"),
        ("remove rate (failed)",
         f"{out.get('remove_rate', 0):.0f} /s ({out.get('remove_failed')})"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n{out['agents']} agents x {out['containers']} containers, "
          f"{out['concurrency']} in flight")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--containers", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--memory", default="2g")
    parser.add_argument("--heartbeat", default="5s", help="manager heartbeat")
    parser.add_argument("--per-fleet", type=int, default=2500, metavar="N",
                        help="hollow agents per process (more agents: more processes)")
    parser.add_argument("--settle", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long after every node is healthy before placing: "
                             "what the manager still does for nodes just connected (links "
                             "opening, gRPC channels closed once the link carries all) "
                             "then falls outside the timed part (default 0)")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    parser.add_argument("--profile", default="", metavar="DIR",
                        help="py-spy both processes during the create+start phase; raw "
                             "stacks in DIR/manager.txt and DIR/hollow.txt")
    args = parser.parse_args()
    out = asyncio.run(bench(args))
    report(out)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
