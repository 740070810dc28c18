"""Machine states, as Docker Machine names them: always asked of the driver, never stored."""

from __future__ import annotations

import enum


class State(enum.Enum):
    NONE = ""
    RUNNING = "Running"
    PAUSED = "Paused"
    SAVED = "Saved"
    STOPPED = "Stopped"
    STOPPING = "Stopping"
    STARTING = "Starting"
    ERROR = "Error"
    TIMEOUT = "Timeout"

    def __str__(self) -> str:
        return self.value
