"""Asking the cluster's parts whether they are ready: HTTP to etcd and the managers
(TLS with the client cert when the cluster has TLS), HTTP over an engine's unix socket,
and a wait loop that fails early when the process it waits for has died."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from localcluster import ClusterError


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def request(addr: str, method: str, path: str, body: bytes | None = None,
            timeout: float = 10, tls: ssl.SSLContext | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One HTTP request to HOST:PORT, or to a unix socket when `addr` starts with "/"."""
    if addr.startswith("/"):
        conn: http.client.HTTPConnection = _UnixConnection(addr, timeout)
    else:
        host, _, port = addr.rpartition(":")
        if tls is not None:
            conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=tls)
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


def get_json(addr: str, path: str, tls: ssl.SSLContext | None = None,
             timeout: float = 5) -> object | None:
    """The JSON answer of a GET, or None while the other side is not answering."""
    try:
        status, body = request(addr, "GET", path, timeout=timeout, tls=tls)
    except (OSError, http.client.HTTPException):
        return None
    if status != 200:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def client_tls(pki: Path) -> ssl.SSLContext:
    """What the docker CLI does with DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=<pki>/client."""
    context = ssl.create_default_context(cafile=str(pki / "client" / "ca.pem"))
    context.load_cert_chain(str(pki / "client" / "cert.pem"), str(pki / "client" / "key.pem"))
    return context


def log_tail(path: str | Path, lines: int = 15) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text.splitlines()[-lines:])


def wait(check: Callable[[], object], timeout: float, what: str,
         watch: list[tuple[str, subprocess.Popen, str]] = (), hint: str = "") -> object:
    """Poll `check` until it returns something true. `watch`: (label, process, log) that
    must stay alive meanwhile; one that exits ends the wait at once with its log."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        for label, popen, log in watch:
            code = popen.poll()
            if code is not None:
                raise ClusterError(f"{label} exited (status {code}) while waiting for {what}; "
                                   f"the end of {log}:\n{log_tail(log)}")
        if time.monotonic() >= deadline:
            logs = "".join(f"\n  {log}" for _, _, log in watch)
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}"
                               + (f"; {hint}" if hint else "")
                               + (f"; see the logs:{logs}" if logs else ""))
        time.sleep(0.2)
