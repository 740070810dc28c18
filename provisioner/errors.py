"""Errors a `flock machine` command turns into a message and a non-zero exit code.

Each says what went wrong and, where there is one, what to do next; `step` names the
provisioning step that failed or waited, so a timeout is never anonymous.
"""

from __future__ import annotations


class MachineError(Exception):
    """A user-facing failure: printed as it is, exit code `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, *, step: str = "") -> None:
        super().__init__(message)
        self.step = step

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.step}: {text}" if self.step else text


class MachineNotFound(MachineError):
    def __init__(self, name: str) -> None:
        super().__init__(f'Docker machine "{name}" does not exist. Use "flock machine ls" '
                         "to list machines. Or use \"flock machine create\" to add a new one.")
        self.name = name


class MachineExists(MachineError):
    def __init__(self, name: str) -> None:
        super().__init__(f'Docker machine "{name}" already exists')
        self.name = name


class InvalidName(MachineNotFound):
    """A name no machine can have, asked for: Docker Machine looks a machine up before it
    validates the name, so the answer is that it does not exist (only create and import,
    which make a name, say InvalidHostname)."""


class InvalidHostname(MachineError):
    """A new machine's name that is not a hostname: libmachine/mcnerror's
    ErrInvalidHostname, as commands/create.go wraps it."""

    def __init__(self, action: str = "creating") -> None:
        super().__init__(f"Error {action} machine: Invalid hostname specified. Allowed "
                         "hostname chars are: 0-9a-zA-Z . -")


class HostNotRunning(MachineError):
    def __init__(self, name: str = "") -> None:
        super().__init__("Host is not running" + (f' (machine "{name}": start it with '
                                                  f'"flock machine start {name}")' if name
                                                  else ""))


class DriverError(MachineError):
    """The provider refused or failed; the message carries the provider's own words."""


class PreCreateFailed(MachineError):
    """The driver's pre-create check refused: libmachine's ErrDuringPreCreate, for which
    Docker Machine exits 3 (commands/commands.go), so scripts can tell "fix the flags"
    from a failure while creating."""

    exit_code = 3

    def __init__(self, cause: str) -> None:
        super().__init__(f"Error with pre-create check: {cause}")
