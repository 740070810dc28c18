"""pause/unpause: the cgroup v1 freezer of the container (`freezer/flock-exec/<id>`),
which the shim puts every container process into when the controller is mounted."""

from __future__ import annotations

import time

from flock.agent.runtimes.exec import isolation

SETTLE_SECONDS = 5.0


def available() -> bool:
    return isolation.cgroup_available("freezer")


def _state_file(cid: str):
    return isolation.cgroup_dir("freezer", cid) / "freezer.state"


def state(cid: str) -> str:
    """THAWED, FREEZING or FROZEN; THAWED when the container has no freezer cgroup."""
    try:
        return _state_file(cid).read_text().strip()
    except OSError:
        return "THAWED"


def frozen(cid: str) -> bool:
    return state(cid) in ("FROZEN", "FREEZING")


def set_state(cid: str, wanted: str) -> None:
    """Write FROZEN or THAWED and wait until the kernel got there (blocking: use a
    thread). OSError when the container has no freezer cgroup."""
    _state_file(cid).write_text(wanted)
    deadline = time.monotonic() + SETTLE_SECONDS
    while state(cid) != wanted:
        if time.monotonic() > deadline:
            raise OSError(f"the freezer did not reach {wanted}")
        time.sleep(0.01)
        _state_file(cid).write_text(wanted)


def thaw_quietly(cid: str) -> None:
    """Before a signal: a frozen process would not act on it."""
    try:
        if frozen(cid):
            set_state(cid, "THAWED")
    except OSError:
        pass
