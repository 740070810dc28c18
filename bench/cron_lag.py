"""Cron runs, timed: how late after its scheduled time each run's container starts and
how long a failover delays the runs due meanwhile. Real processes: etcd, two exec-runtime
agents, three replicated managers; an `@every 1s` job of `true`.

    python bench/cron_lag.py [--seconds 30] [--kills 3] [--replication-ttl 2s]

Prints, from the run records in etcd, the start lag (started - scheduled) of the runs
due in the 5 s after a kill of the primary (made up by the next one) and of the others,
and the runs by result.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from flock.manager.cron.jobs import Job  # noqa: E402
from tests.support.procs import wait_for  # noqa: E402
from tests.support.replicated import ha_cluster, primary, replicated  # noqa: E402

PREFIX = "/cronbench"


def figures(lags: list[float]) -> str:
    if not lags:
        return "none"
    lags = sorted(lags)
    p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))]
    return (f"{len(lags)} runs: median {statistics.median(lags) * 1000:.0f} ms, "
            f"p95 {p95 * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--replication-ttl", default="2s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cron-bench-") as tmp:
        folder = pathlib.Path(tmp)
        kill_times: list[float] = []
        with ha_cluster(folder, PREFIX, args.replication_ttl) as (etcd, url, managers):
            wait_for(lambda: primary(managers), 30, "a primary")
            managers[0].import_busybox()
            job = Job(name="lag", schedule="@every 1s", deadline=60.0, history=10_000,
                      body={"Image": "busybox", "Cmd": ["true"]},
                      created=float(int(time.time())))
            etcd.put(f"{PREFIX}/_cron/jobs/lag", json.dumps(job.to_dict()))
            period = args.seconds / (args.kills + 1)
            for index in range(args.kills):
                time.sleep(period)
                leader = wait_for(lambda: primary(managers), 30, "a primary")
                kill_times.append(time.time())
                leader.kill9()
                managers.remove(leader)
                managers.append(replicated(f"r{index}", folder, url,
                                           args.replication_ttl).start())
            time.sleep(period)
            end = time.time()
            time.sleep(5)
            runs = [json.loads(v) for v in etcd.keys(f"{PREFIX}/_cron/runs/lag/").values()]
    started = [r for r in runs if r["started"] and r["scheduled"] <= end]
    made_up = [r for r in started  # due within 5 s after a kill: fired by the next primary
               if any(k <= r["scheduled"] < k + 5 for k in kill_times)]
    on_time = [r for r in started if r not in made_up]
    print(f"@every 1s for {args.seconds:g}s, {args.kills} primaries killed "
          f"(--replication-ttl {args.replication_ttl})")
    print(f"  on schedule:  {figures([r['started'] - r['scheduled'] for r in on_time])}")
    print(f"  after a kill: {figures([r['started'] - r['scheduled'] for r in made_up])}")
    results = {}
    for run in runs:
        results[run["result"]] = results.get(run["result"], 0) + 1
    print("  results:      " + ", ".join(f"{k} {v}" for k, v in sorted(results.items())))


if __name__ == "__main__":
    main()
