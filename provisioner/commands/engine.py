"""Asking a machine's Docker endpoint for its version over mutual TLS, with the store's
client cert, as `docker version` would: what `ls` shows in its DOCKER column and
`flock machine version NAME` prints. The server cert is checked against the address
dialled, so a cert that no longer names the machine's IP shows up here first."""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from pathlib import Path

from flock.provisioner.errors import MachineError


def engine_version(url: str, ca: Path, cert: Path, key: Path, timeout: float = 10.0) -> str:
    """The engine's version (`/version`'s Version) at tcp://HOST:PORT; MachineError with the
    reason when it cannot be asked."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "tcp" or not parsed.hostname or not parsed.port:
        raise MachineError(f"cannot ask {url!r} for its version: not a tcp://HOST:PORT URL")
    try:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise MachineError(f"the machine's TLS files cannot be used ({exc}): run "
                           "`flock machine regenerate-certs NAME`") from None
    conn = http.client.HTTPSConnection(parsed.hostname, parsed.port, timeout=timeout,
                                       context=context)
    try:
        conn.request("GET", "/version", headers={"Host": "docker"})
        answer = conn.getresponse()
        body = answer.read(1 << 20)
    except ssl.SSLCertVerificationError as exc:
        raise MachineError(f"the engine's certificate is not valid for {parsed.hostname} "
                           f"({exc.verify_message}): run `flock machine regenerate-certs "
                           "NAME`") from None
    except (OSError, http.client.HTTPException) as exc:
        raise MachineError(f"cannot reach {url}: {exc}") from None
    finally:
        conn.close()
    if answer.status != 200:
        raise MachineError(f"{url}/version answered {answer.status} {answer.reason}")
    try:
        return str(json.loads(body)["Version"])
    except (ValueError, KeyError, TypeError):
        raise MachineError(f"{url}/version did not answer like a Docker Engine") from None
