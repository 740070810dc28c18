"""The check `env` and `config` make before they print anything: the machine's Docker
endpoint answers TLS with the machine's certs.

Docker Machine does the same (commands/env.go and config.go call libmachine/check's
MachineConnChecker, which dials the engine with cert.ValidateCertificate), so `eval
$(flock machine env NAME)` never points docker at an engine that cannot be used: a URL
that nothing answers, an engine serving another CA's cert, or a `none` machine whose
--url is not an endpoint at all, fail here with Docker Machine's wording and exit 1.
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.parse
from pathlib import Path

from flock.provisioner.errors import MachineError

DIAL_TIMEOUT = 20.0   # cert.ValidateCertificate's net.Dialer timeout
PREFIX = "Error checking TLS connection: "


def host_port(url: str) -> tuple[str, int]:
    """(host, port) of tcp://HOST:PORT; MachineError with check.go's "Error parsing URL"."""
    parsed = urllib.parse.urlsplit(url)
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError as exc:
        raise MachineError(f"{PREFIX}Error parsing URL: {url!r}: {exc}") from None
    if parsed.scheme != "tcp" or not host or not port:
        raise MachineError(f"{PREFIX}Error parsing URL: {url!r} is not tcp://HOST:PORT "
                           "(the none driver stores --url as given; fix it with rm and "
                           "create)")
    return host, port


def invalid_cert_text(address: str, reason: str) -> str:
    """libmachine/check's ErrCertInvalid, wrapped as Check and cmdEnv wrap it."""
    return (f"{PREFIX}Error checking and/or regenerating the certs: There was an error "
            f"validating certificates for host {json.dumps(address)}: {reason}\n"
            "You can attempt to regenerate them using 'flock machine regenerate-certs "
            "[name]'.\nBe advised that this will trigger a Docker daemon restart which will "
            "stop running containers.")


def _reason(address: str, exc: BaseException) -> str:
    """The failure as Go's net/tls errors read (`dial tcp ADDR: connect: ...`)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"x509: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"remote error: tls: {exc.reason or exc}"
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"dial tcp {address}: i/o timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return f"dial tcp {address}: connect: {exc.strerror.lower()}"
    return f"dial tcp {address}: {exc}"


def check_connection(url: str, ca: Path, cert: Path, key: Path,
                     timeout: float = DIAL_TIMEOUT) -> None:
    """A TLS handshake with the engine at `url`, trusting `ca` and presenting the client
    cert; MachineError (Docker Machine's text) when it does not complete."""
    host, port = host_port(url)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise MachineError(invalid_cert_text(address, f"reading the machine's certs: {exc}")) \
            from None
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host) as tls:
            tls.do_handshake()
    except (OSError, ssl.SSLError) as exc:
        raise MachineError(invalid_cert_text(address, _reason(address, exc))) from None
