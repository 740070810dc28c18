"""The flags of classic Swarm's `manage` that Flock's own set does not already have, so
that a classic command line starts a Flock manager unchanged (classic: cli/flags.go, the
`manage` command in cli/commands.go, checked in cli/manage.go).

Each is honoured or refused with the reason; docs/swarm-compat.md lists them. The checks
keep classic's messages where a script could meet them.
"""

from __future__ import annotations

import os

from flock.common.durations import parse_duration
from flock.manager.cluster.sync import RefreshRange

ENV_HOST = "SWARM_HOST"
ENV_STRATEGY = "SWARM_STRATEGY"
ENV_ADVERTISE = "SWARM_ADVERTISE"
CLUSTER_DRIVER = "swarm"
REFRESH_RETRY = 3  # the only value classic accepts for the deprecated --engine-refresh-retry
OVERCOMMIT = "swarm.overcommit"
CREATE_RETRY = "swarm.createretry"
JITTER = (0.8, 1.2)  # the refresh period's range around --heartbeat when no bound is given


class ClassicFlagError(ValueError):
    """A classic flag that cannot work; the message names it."""


def add_arguments(parser) -> None:
    """classic's manage flags that `flock manage` had no equivalent of."""
    parser.add_argument("--engine-refresh-min-interval", default=None, metavar="DURATION",
                        help="wait at least this long between two refreshes of a node "
                             "(default 0.8 x --heartbeat; classic Swarm's is 30s)")
    parser.add_argument("--engine-refresh-max-interval", default=None, metavar="DURATION",
                        help="wait at most this long between two refreshes of a node "
                             "(default 1.2 x --heartbeat; classic Swarm's is 60s)")
    parser.add_argument("--engine-refresh-retry", type=int, default=REFRESH_RETRY,
                        metavar="N", help="deprecated; replaced by --engine-failure-retry")
    parser.add_argument("-c", "--cluster-driver", default=CLUSTER_DRIVER,
                        help="cluster driver to use [swarm]")
    parser.add_argument("--discovery-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="discovery option, repeatable: kv.path=PATH (etcd://)")
    parser.add_argument("--api-enable-cors", "--cors", dest="cors", action="store_true",
                        help="enable CORS headers in the Docker API")
    parser.add_argument("--refresh-on-node-filter", action="store_true",
                        help="re-read the containers of the nodes a `docker ps --filter "
                             "node=...` names before answering it")
    parser.add_argument("--container-name-refresh-filter", default="", metavar="NAME",
                        help="re-read every node's containers before answering a `docker "
                             "ps --filter name=NAME` with exactly this name")


def check(args) -> None:
    """Refuse what classic refuses (cli/manage.go), with its words."""
    retry = getattr(args, "engine_refresh_retry", REFRESH_RETRY)
    if retry != REFRESH_RETRY:
        raise ClassicFlagError("--engine-refresh-retry is deprecated. Use "
                               "--engine-failure-retry")
    driver = getattr(args, "cluster_driver", CLUSTER_DRIVER)
    if driver != CLUSTER_DRIVER:
        reason = (" (Flock has no Mesos driver: it schedules on its own agents only)"
                  if driver.startswith("mesos") else "")
        raise ClassicFlagError(f'unsupported cluster "{driver}"{reason}')


def refresh_range(args, heartbeat: float) -> RefreshRange | None:
    """The refresh bounds from --engine-refresh-min/max-interval; None when neither is
    given (each node then beats every --heartbeat, jittered by ±20%). A bound left out
    follows --heartbeat, stretched so that it never crosses the one given."""
    texts = (getattr(args, "engine_refresh_min_interval", None),
             getattr(args, "engine_refresh_max_interval", None))
    if texts == (None, None):
        return None
    low, high = (_duration(flag, text) for flag, text in zip(
        ("--engine-refresh-min-interval", "--engine-refresh-max-interval"), texts,
        strict=True))
    if low is not None and low <= 0:
        raise ClassicFlagError("min refresh interval should be a positive number")
    if low is None:
        low = min(heartbeat * JITTER[0], high)
    if high is None:
        high = max(heartbeat * JITTER[1], low)
    if high < low:
        raise ClassicFlagError("max refresh interval cannot be less than min refresh interval")
    if high <= 0:
        raise ClassicFlagError("max refresh interval should be a positive number")
    return RefreshRange(low, high)


def _duration(flag: str, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ClassicFlagError(f"{flag}: {exc}") from None


def hosts(given: list[str] | None) -> list[str]:
    """-H values, else $SWARM_HOST (comma-separated, as urfave/cli splits a slice)."""
    if given:
        return list(given)
    env = os.environ.get(ENV_HOST, "")
    return [h.strip() for h in env.split(",") if h.strip()]


def strategy(given: str | None, default: str) -> str:
    """--strategy, else $SWARM_STRATEGY, else `default`."""
    return given or os.environ.get(ENV_STRATEGY, "").strip() or default


def advertise(given: str | None) -> str:
    """--advertise/--addr, else $SWARM_ADVERTISE."""
    return (given or "").strip() or os.environ.get(ENV_ADVERTISE, "").strip()


def overcommit(items: list[str]) -> float:
    """The --cluster-opt values: swarm.overcommit (classic's rule: above -1, default
    0.05, cluster/swarm/cluster.go NewCluster); the other options are refused."""
    ratio = 0.05
    for item in items:
        key, sep, value = item.partition("=")
        if sep and key == CREATE_RETRY:
            raise ClassicFlagError(
                f"--cluster-opt {item!r}: not supported: Flock does not retry a create "
                "that a node refused; the node's own error is answered instead")
        if not sep or key != OVERCOMMIT:
            raise ClassicFlagError(f"unsupported --cluster-opt {item!r}: known options are "
                                   f"{OVERCOMMIT}=VALUE")
        try:
            ratio = float(value)
        except ValueError:
            raise ClassicFlagError(f"--cluster-opt {item!r}: expected a number") from None
        if not ratio > -1 or ratio == float("inf"):  # NaN too
            raise ClassicFlagError(f"{OVERCOMMIT} should be larger than -1, {value} is "
                                   "invalid")
    return ratio
