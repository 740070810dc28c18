"""Durations and sizes worded like Go's go-units, which the Engine and the docker CLI use
(`docker ps`, `docker info`), so that Flock's tables and messages read the same."""

from __future__ import annotations

_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_duration(seconds: float) -> str:
    """Go's units.HumanDuration, as the Engine words container ages (`Up 3 seconds`,
    `Exited (0) 2 minutes ago`)."""
    seconds = int(seconds)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def bytes_size(size: float) -> str:
    """Go's units.BytesSize: 1024-based, 4 significant digits ("1.021 GiB", "0 B"), as
    `docker info` words memory."""
    unit = 0
    while size >= 1024 and unit < len(_BINARY_UNITS) - 1:
        size /= 1024
        unit += 1
    return f"{size:.4g} {_BINARY_UNITS[unit]}"
