"""One HTTP request over a plain socket, its body sent while the answer is read, as the
docker CLI does: a server that answers before reading the whole body (and closes) still
has its answer read, instead of the client failing on a broken pipe. For comparing the
manager's answers with an engine's on the same input (TCP or a unix socket)."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> str:
        """The `message` of a Docker-style JSON error."""
        return json.loads(self.body)["message"]

    def lines(self) -> list[dict]:
        """A JSON-lines answer (load, import progress) parsed."""
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


def connect(address: str | tuple[str, int], timeout: float = 60) -> socket.socket:
    """A unix socket path or a (host, port)."""
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(timeout)
        sock.connect(address)
        return sock
    return socket.create_connection(address, timeout=timeout)


def request(address: str | tuple[str, int], method: str, path: str, body: bytes,
            headers: dict[str, str] | None = None, timeout: float = 60) -> Answer:
    """Send `body` with its Content-Length from a thread; read the whole answer."""
    sock = connect(address, timeout)
    head = f"{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n"

    def send() -> None:
        with contextlib.suppress(OSError):  # the server stopped reading: it answered
            sock.sendall(head.encode() + body)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        answer = http.client.HTTPResponse(sock, method=method)
        answer.begin()
        data = answer.read()
        return Answer(answer.status, {k.lower(): v for k, v in answer.getheaders()}, data)
    finally:
        sock.close()
        sender.join(timeout)
