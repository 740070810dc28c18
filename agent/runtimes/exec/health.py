"""Health checks, the pure part: the container's check (its own Config.Healthcheck merged
over the image's HEALTHCHECK), the Engine's checks of it, and how one probe's result
moves State.Health {Status, FailingStreak, Log}. The rules and texts are moby's
daemon/health.go (defaults 30s/30s/0s/3 retries, 5 log entries, 4096 bytes of output,
"Health check exceeded timeout (30s)", no failing streak inside the start period while
still starting) and daemon/commit.go's merge of the image config."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

from flock.agent.runtimes.exec.errors import bad_request
from flock.agent.runtimes.exec.store import read_json, write_json_atomic
from flock.common.durations import parse_duration

SECOND = 10**9
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_PERIOD = 0
DEFAULT_RETRIES = 3
MIN_DURATION = 10**6  # 1ms
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
STATE_FILE = "health.json"
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
DURATIONS = ("Interval", "Timeout", "StartPeriod")


@dataclass(frozen=True)
class Check:
    argv: list[str]
    interval: int  # nanoseconds, as the API gives them
    timeout: int
    start_period: int
    retries: int


def merge(own: dict | None, image: dict | None) -> dict | None:
    """The container's Healthcheck: the image's where the container's leaves a field
    empty (no Test, zero durations, zero retries)."""
    if not image:
        return own
    if not own:
        return dict(image)
    merged = dict(own)
    if not merged.get("Test"):
        merged["Test"] = image.get("Test")
    for key in (*DURATIONS, "Retries"):
        if not merged.get(key) and image.get(key):
            merged[key] = image[key]
    return merged


def validate(check: object) -> None:
    """The Engine's refusals at create (daemon/container.go verifyContainerSettings)."""
    if check is None:
        return
    if not isinstance(check, dict):
        raise bad_request("Healthcheck must be an object")
    test = check.get("Test")
    if test is not None and (not isinstance(test, list)
                             or not all(isinstance(t, str) for t in test)):
        raise bad_request("Healthcheck.Test must be a list of strings")
    for key in DURATIONS:
        value = check.get(key) or 0
        if not isinstance(value, int) or isinstance(value, bool):
            raise bad_request(f"{key} in Healthcheck must be an integer (nanoseconds)")
        if 0 < value < MIN_DURATION or value < 0:
            raise bad_request(f"{key} in Healthcheck cannot be less than 1ms")
    retries = check.get("Retries") or 0
    if not isinstance(retries, int) or retries < 0:
        raise bad_request("Retries in Healthcheck cannot be negative")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise bad_request(f"unknown Healthcheck Test type {test[0]!r}: use NONE, CMD or "
                          f"CMD-SHELL")


def effective(config: dict) -> Check | None:
    """The check to run, None when there is none (no Test, or NONE)."""
    check = config.get("Healthcheck") or {}
    test = check.get("Test") or []
    if not test or test[0] == "NONE" or len(test) < 2:
        return None
    argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
    return Check(argv, int(check.get("Interval") or DEFAULT_INTERVAL),
                 int(check.get("Timeout") or DEFAULT_TIMEOUT),
                 int(check.get("StartPeriod") or DEFAULT_START_PERIOD),
                 int(check.get("Retries") or DEFAULT_RETRIES))


def from_instruction(args: str) -> dict:
    """`HEALTHCHECK [--interval=D --timeout=D --start-period=D --retries=N] CMD ...` or
    `HEALTHCHECK NONE` (a `docker import -c` change, as the Engine's builder takes it)."""
    rest = args.strip()
    options: dict = {}
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        key, _, value = word[2:].partition("=")
        field = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                 "retries": "Retries"}.get(key)
        if field is None:
            raise bad_request(f"Unknown flag: {key}")
        try:
            options[field] = int(value) if field == "Retries" else \
                round(parse_duration(value) * SECOND)
        except ValueError as exc:
            raise bad_request(f"HEALTHCHECK --{key}: {exc}") from None
    kind, _, command = rest.partition(" ")
    command = command.strip()
    if kind.upper() == "NONE" and not command and not options:
        return {"Test": ["NONE"]}
    if kind.upper() != "CMD" or not command:
        raise bad_request("HEALTHCHECK takes NONE, or CMD and the command to run")
    try:
        exec_form = json.loads(command)
    except json.JSONDecodeError:
        exec_form = None
    if isinstance(exec_form, list) and all(isinstance(w, str) for w in exec_form):
        return {"Test": ["CMD", *exec_form], **options}
    return {"Test": ["CMD-SHELL", command], **options}


def go_duration(ns: int) -> str:
    """A duration as Go's time.Duration prints it ("30s", "1.5s", "500ms", "1m30s")."""
    if ns % SECOND and ns < SECOND:
        for unit, size in (("ms", 10**6), ("µs", 10**3), ("ns", 1)):
            if ns >= size:
                return f"{_trim(ns / size)}{unit}"
        return "0s"
    minutes, rest = divmod(ns, 60 * SECOND)
    hours, minutes = divmod(minutes, 60)
    text = f"{_trim(rest / SECOND)}s"
    if minutes or hours:
        text = f"{minutes}m{text}"
    if hours:
        text = f"{hours}h{text}"
    return text


def _trim(value: float) -> str:
    return f"{value:.9f}".rstrip("0").rstrip(".")


def starting(previous: dict | None) -> dict:
    """State.Health when a container (re)starts: starting again, the old log kept."""
    return {"Status": STARTING, "FailingStreak": 0,
            "Log": list((previous or {}).get("Log") or [])}


def record_result(health: dict, result: dict, check: Check, since_start: int) -> bool:
    """Fold one probe's result ({Start, End, ExitCode, Output}) into `health`; whether
    the status changed. `since_start`: ns from the container's start to the probe's."""
    before = health["Status"]
    health["Log"] = [*health.get("Log", []), result][-MAX_LOG_ENTRIES:]
    if result["ExitCode"] == 0:
        health["FailingStreak"] = 0
        health["Status"] = HEALTHY
    elif not (before == STARTING and since_start < check.start_period):
        health["FailingStreak"] += 1
        if health["FailingStreak"] >= check.retries:
            health["Status"] = UNHEALTHY
    return health["Status"] != before


def clip_output(data: bytes) -> str:
    return data[:MAX_OUTPUT].decode("utf-8", "replace")


def timeout_message(check: Check) -> str:
    return f"Health check exceeded timeout ({go_duration(check.timeout)})"


def load(container_dir: pathlib.Path) -> dict | None:
    return read_json(container_dir / STATE_FILE)


def save(container_dir: pathlib.Path, health: dict) -> None:
    write_json_atomic(container_dir / STATE_FILE, health)


def ps_suffix(status: str) -> str:
    """What `docker ps` adds to "Up 5 seconds" (moby's Health.String)."""
    if not status:
        return ""
    return " (health: starting)" if status == STARTING else f" ({status})"
