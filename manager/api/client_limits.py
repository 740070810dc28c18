"""What the Docker API front allows a client connection, like dockerd does: how long it may
take to send a request's head, how long it may sit idle between requests, and how many
connections one address may hold open. Pure: fed bytes, times and addresses; the
protocol that applies it is manager/api/guarded_server.py.

dockerd's HTTP server sets `ReadHeaderTimeout: 5 * time.Minute` and nothing else
(moby/moby cmd/dockerd/daemon.go), so Go counts the head's time from the accept for a
connection's first request and from the head's first byte for later ones, and an idle
keep-alive connection is held for ever. The manager, which fronts a whole cluster,
also closes idle connections (after longer than clients keep theirs: Go's transport
drops idle connections after 90 s) and caps the connections per client address, so
that one client cannot hold every descriptor the process has.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

HEADER_TIMEOUT = 300.0  # dockerd's ReadHeaderTimeout
IDLE_TIMEOUT = 120.0
MAX_PER_CLIENT = 256
END_OF_HEAD = b"\r\n\r\n"


@dataclass(frozen=True)
class ClientLimits:
    """0 turns a limit off."""

    header_timeout: float = HEADER_TIMEOUT  # seconds for a request's head
    idle_timeout: float = IDLE_TIMEOUT  # seconds between requests
    max_per_client: int = MAX_PER_CLIENT  # connections open at once per address

    def __post_init__(self) -> None:
        for name in ("header_timeout", "idle_timeout", "max_per_client"):
            value = getattr(self, name)
            if not value >= 0:  # NaN too
                raise ValueError(f"{name} must be 0 (no limit) or more, not {value}")


class Phase(enum.Enum):
    IDLE = "idle"  # between requests (or before the first): the idle timeout runs
    HEAD = "head"  # a head has begun: the header timeout runs
    BUSY = "busy"  # a request is being served: no timeout of ours


class HeadClock:
    """When one connection must next have made progress, and why it failed to.

    Waiting for a request (a new connection, or one whose last answer went out) is idle
    time; a head counts as begun at its first byte and as complete at its blank line,
    and the server says when a request is done (`request_done`), since only it knows
    where a body ends. So a client that connects and sends nothing is closed after the
    idle timeout, and one that trickles a head after the header timeout.
    """

    def __init__(self, limits: ClientLimits, now: float) -> None:
        self.limits = limits
        self.phase = Phase.IDLE
        self.deadline = _after(now, limits.idle_timeout)
        self._tail = b""

    def received(self, data: bytes, now: float) -> None:
        """Bytes from the client."""
        if self.phase is Phase.BUSY or not data:
            return
        if self.phase is Phase.IDLE:
            self.phase = Phase.HEAD
            self.deadline = _after(now, self.limits.header_timeout)
            self._tail = b""
        keep = len(END_OF_HEAD) - 1  # a blank line split across two reads
        if END_OF_HEAD in self._tail + data[:keep] or END_OF_HEAD in data:
            self.request_started()
        else:
            self._tail = (self._tail + data[-keep:])[-keep:]

    def request_started(self) -> None:
        """The server has a whole head (whatever the bytes looked like to us)."""
        self.phase = Phase.BUSY
        self.deadline = None
        self._tail = b""

    def request_done(self, now: float) -> None:
        self.phase = Phase.IDLE
        self.deadline = _after(now, self.limits.idle_timeout)
        self._tail = b""

    def expired(self, now: float) -> str | None:
        """Why the connection must close now, or None."""
        if self.deadline is None or now < self.deadline:
            return None
        if self.phase is Phase.IDLE:
            return f"idle for {self.limits.idle_timeout:g}s"
        return f"no complete request head in {self.limits.header_timeout:g}s"


def _after(now: float, timeout: float) -> float | None:
    return now + timeout if timeout > 0 else None


class AddressCounts:
    """Open connections per client address, within `limit` each (0: no cap)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def admit(self, address: str) -> bool:
        """Count one more connection from `address`, unless it is at the cap."""
        count = self._open.get(address, 0)
        if self.limit and count >= self.limit:
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def open(self, address: str) -> int:
        return self._open.get(address, 0)


def aiohttp_keepalive(limits: ClientLimits) -> float:
    """aiohttp's own keep-alive timer, which closes a connection that has no whole
    head that long after it opened or after its last answer, made a backstop that never
    fires before ours: idle and header time together (aiohttp 3.14 defaults to an
    hour). Off when ours are off."""
    if limits.idle_timeout and limits.header_timeout:
        return limits.idle_timeout + limits.header_timeout + 1
    return 10 * 365 * 86400.0
