"""Durations as people type them on a command line ("20s", "1m", "500ms", "1h30m").

Go-style, because classic Swarm's flags (--heartbeat, --ttl) took Go durations and
scripts written for it should keep working.
"""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")


def parse_duration(text: str) -> float:
    """Seconds in `text`; a bare number means seconds. ValueError names the bad text."""
    raw = text.strip()
    if not raw:
        raise ValueError("invalid duration '': empty")
    try:
        value = float(raw)
    except ValueError:
        pass
    else:
        if value < 0:
            raise ValueError(f"invalid duration {text!r}: negative")
        return value
    total = 0.0
    pos = 0
    while pos < len(raw):
        match = _PART.match(raw, pos)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: expected a number and a unit "
                "(ms, s, m, h), e.g. 20s, 1m, 1h30m"
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total
