"""What to tell someone whose `flock` command could not reach the manager: the address
tried and what named it, and, when the two sides disagree about TLS, which setting to
change. gRPC reports these cases as bare socket errors ("Socket closed", "Connection
reset by peer"), so a plaintext client that failed asks the address for a TLS handshake
to tell a TLS manager from a missing one.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable

from flock.client import Target

PROBE_TIMEOUT = 3.0
_TLS_ON = "set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the folder of ca.pem, cert.pem " \
          "and key.pem (or pass --tlsverify)"


def unreachable(target: Target, tls: bool, detail: str, cert_file: str,
                speaks_tls: Callable[[str], bool | None]) -> str:
    """The message for an UNAVAILABLE call. `speaks_tls(HOST:PORT)` says whether
    something answers a TLS handshake there (None: nothing answers at all)."""
    where = f"cannot reach the manager at {target.shown} (from {target.source})"
    return f"{where}: {_why(target, tls, detail, cert_file, speaks_tls)}"


def _why(target: Target, tls: bool, detail: str, cert_file: str,
         speaks_tls: Callable[[str], bool | None]) -> str:
    if "Connection refused" in detail or "No such file or directory" in detail:
        return ("nothing listens there; is `flock manage` running, and is that one of its "
                "-H addresses?")
    if tls and "WRONG_VERSION_NUMBER" in detail:
        return ("it does not speak TLS there; unset DOCKER_TLS_VERIFY and FLOCK_TLS_VERIFY "
                "(or drop --tlsverify)")
    if tls and "CERTIFICATE_VERIFY_FAILED" in detail:
        return ("its certificate is not signed by the CA in ca.pem, or does not name that "
                f"address ({_last(detail)})")
    if tls and not target.is_unix and ("reset by peer" in detail or "Socket closed" in detail):
        return (f"it refused our client certificate ({cert_file}); a manager with "
                "--tlsverify accepts only certificates signed by its CA")
    if not tls and not target.is_unix and speaks_tls(target.grpc):
        return f"it speaks TLS there; {_TLS_ON}"
    return detail


def _last(detail: str) -> str:
    """The reason at the end of a gRPC handshake error ("...: self signed certificate")."""
    parts = [p.strip() for p in detail.split(":") if p.strip() and p.strip() != "OK"]
    return parts[-1] if parts else detail


def speaks_tls(address: str) -> bool | None:
    """Whether HOST:PORT completes a TLS handshake (the certificate is not checked: only
    the protocol is asked about); None when nothing answers."""
    host, _, port = address.rpartition(":")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host.strip("[]"), int(port)), PROBE_TIMEOUT) as raw:
            try:
                with context.wrap_socket(raw):
                    return True
            except ssl.SSLError as exc:
                return "ALERT" in (exc.reason or "")  # a TLS peer that refused us
    except OSError:
        return None
