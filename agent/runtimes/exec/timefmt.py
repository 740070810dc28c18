"""Time in the Engine's text forms: RFC 3339 with nanoseconds (Go trims trailing zeros),
the zero time Go prints for "never", and the human durations `docker ps` shows."""

from __future__ import annotations

import time
from datetime import UTC, datetime

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339nano(ns: int) -> str:
    """Format nanoseconds since the epoch like Go's time.RFC3339Nano in UTC."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def now_rfc() -> str:
    return rfc3339nano(time.time_ns())


def parse_rfc3339nano(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 UTC time; 0 for the zero time."""
    if not text or text.startswith("0001-01-01"):
        return 0
    base, _, rest = text.rstrip("Z").partition(".")
    secs = int(datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp())
    frac = int((rest + "000000000")[:9]) if rest else 0
    return secs * 1_000_000_000 + frac


def parse_client_time(value: str, default: int) -> int:
    """A `since`/`until` query value (unix seconds, with an optional fraction, or an
    RFC 3339 time) in nanoseconds; `default` when empty."""
    if not value:
        return default
    try:
        secs, _, frac = value.partition(".")
        return int(secs) * 1_000_000_000 + int((frac + "000000000")[:9] or 0)
    except ValueError:
        return parse_rfc3339nano(value)
