"""A TLS endpoint for tests of `flock machine env/config`, which dial the machine's engine
and finish a TLS handshake before printing anything (as Docker Machine's check.go does).

Where a test is about what env/config print rather than about an engine, this stands in
for the engine's TLS port: a real listening socket that completes real handshakes with the
machine's own server cert and requires the client cert the store made (no mock of the
check: a wrong cert or CA fails here as it would at dockerd). The socket is bound at once
(so the machine can be created with its URL) and serves once `serve()` is given the cert
the store made for that machine.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path


class TLSEndpoint:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def serve(self, cert: Path, key: Path, ca: Path) -> TLSEndpoint:
        """Answer every connection with a TLS handshake (server cert, client cert required,
        signed by `ca`), then close it."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        context.load_verify_locations(str(ca))
        context.verify_mode = ssl.CERT_REQUIRED

        def loop() -> None:
            while True:
                try:
                    conn, _ = self.sock.accept()
                except OSError:
                    return   # closed
                with contextlib.suppress(OSError, ssl.SSLError):
                    conn.settimeout(10)
                    with context.wrap_socket(conn, server_side=True):
                        pass
                conn.close()

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> TLSEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
