"""Waiting, from this side, until a machine's services answer: what a user of the machine
will do next (dial the engine or the manager over TLS with the store's client cert, the
manager dialling the agent) is what is checked. A service that does not answer in time
fails the step with the end of its log, fetched over SSH, so the error says why.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from flock.provisioner.errors import MachineError

POLL = 0.5
DOOM_EVERY = 6   # polls between two questions to the machine (they cost a round trip)


def client_context(certs_dir: Path) -> ssl.SSLContext:
    """TLS as `docker --tlsverify` with the store's client cert does it."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=str(certs_dir / "ca.pem"))
    ctx.load_cert_chain(str(certs_dir / "cert.pem"), str(certs_dir / "key.pem"))
    return ctx


def ping(ip: str, port: int, ctx: ssl.SSLContext, timeout: float = 5.0) -> str:
    """'' when GET /_ping answers OK over TLS, else what went wrong."""
    conn = http.client.HTTPSConnection(ip, port, context=ctx, timeout=timeout)
    try:
        conn.request("GET", "/_ping")
        answer = conn.getresponse()
        body = answer.read(200).decode(errors="replace").strip()
        return "" if answer.status == 200 else f"HTTP {answer.status}: {body}"
    except ssl.SSLCertVerificationError as exc:
        return f"TLS verification failed ({exc.verify_message})"
    except (OSError, http.client.HTTPException) as exc:
        return _describe(exc)
    finally:
        conn.close()


def port_open(ip: str, port: int, timeout: float = 3.0) -> str:
    try:
        with socket.create_connection((ip, port), timeout=timeout):
            return ""
    except OSError as exc:
        return _describe(exc)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def wait_until(check: Callable[[], str], deadline: float, step: str, what: str,
               log_tail: Callable[[], str], doomed: Callable[[], str] | None = None) -> None:
    """Poll `check` ('' means it answers) until `deadline`; MachineError naming `step`,
    `what` was waited for, the last error, and the service's log. `doomed` (asked now
    and then) says why waiting longer is pointless, e.g. a service that keeps exiting."""
    started = time.monotonic()
    last = "not tried"
    polls = 0
    while True:
        last = check()
        if not last:
            return
        polls += 1
        if doomed is not None and polls % DOOM_EVERY == 0:
            reason = doomed()
            if reason:
                raise MachineError(f"{reason}, so {what} will not answer; last error: {last}. "
                                   f"Its log ends with:\n{_tail(log_tail)}", step=step)
        if time.monotonic() + POLL >= deadline:
            break
        time.sleep(POLL)
    waited = time.monotonic() - started
    raise MachineError(f"waited {waited:.0f}s for {what}; last error: {last}. Its log ends "
                       f"with:\n{_tail(log_tail)}\nAllow more time with "
                       "--provision-timeout if the machine is just slow", step=step)


def _tail(log_tail: Callable[[], str]) -> str:
    try:
        return log_tail().strip() or "(empty)"
    except Exception as exc:  # noqa: BLE001 - the log is a courtesy; the error stands
        return f"(its log could not be read: {exc})"
