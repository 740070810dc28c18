"""Signal names as clients send them: "SIGKILL", "KILL", "kill" or "9"."""

from __future__ import annotations

import signal

from flock.agent.runtimes.exec.errors import bad_request


def parse_signal(value: str | int | None, default: int = signal.SIGKILL) -> int:
    if value in (None, ""):
        return default
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise bad_request(f"Invalid signal: {text}")
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise bad_request(f"Invalid signal: {text}") from None
