"""Memory sizes as the docker CLI writes them: "512m", "2g", "1.5G", "1048576"."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_memory(text: str) -> int:
    """Bytes; ValueError naming the text when it is not a size."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"invalid size {text!r}: expected a number with an optional unit "
                         f"b, k, m, g or t (e.g. 2g)")
    value = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if value <= 0:
        raise ValueError(f"invalid size {text!r}: must be positive")
    return value
