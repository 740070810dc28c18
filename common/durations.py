"""Durations as people type them on a command line ("20s", "1m", "500ms", "1h30m").

Go-style, because classic Swarm's flags (--heartbeat, --ttl, --engine-refresh-*) took
Go durations (time.ParseDuration: units ns, us/µs, ms, s, m, h, an optional leading `+`)
and scripts written for it should keep working. Two differences, both on purpose: a bare
number means seconds (Go wants a unit on anything but 0), and negative durations are
refused here, since no flag of ours has a use for one.
"""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 0.001, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")


def parse_duration(text: str) -> float:
    """Seconds in `text`; a bare number means seconds. ValueError names the bad text."""
    raw = text.strip()
    if not raw:
        raise ValueError("invalid duration '': empty")
    if raw.startswith("-"):
        raise ValueError(f"invalid duration {text!r}: negative")
    raw = raw.removeprefix("+")
    if _NUMBER.fullmatch(raw):  # not float(): it takes "inf", "nan" and "1e3" too
        return float(raw)
    if not raw:
        raise ValueError(f"invalid duration {text!r}: expected a number")
    total = 0.0
    pos = 0
    while pos < len(raw):
        match = _PART.match(raw, pos)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: expected a number and a unit "
                "(ns, us, ms, s, m, h), e.g. 20s, 1m, 1h30m"
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total
