"""A TCP proxy on a free loopback port in front of a server, that can cut one answer
off after a number of bytes (a pull interrupted halfway) and records the requests'
head lines (to see the Range header a resumed download sends). Stopped by close()."""

from __future__ import annotations

import socket
import threading


class CuttingProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.cut_after: int | None = None  # bytes of the next blob answer, then close
        self.cut_path = ""  # only a request whose first line contains this is cut
        self.heads: list[str] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        state: dict = {"limit": None, "sent": 0}

        def to_server() -> None:
            try:
                while data := client.recv(65536):
                    head = data.decode("latin-1").split("\r\n\r\n", 1)[0]
                    if head.split(" ", 1)[0] in ("GET", "HEAD", "POST", "PUT", "PATCH"):
                        self.heads.append(head)
                        if self.cut_after is not None and self.cut_path in head.split("\r\n")[0]:
                            state["limit"] = state["sent"] + self.cut_after
                            self.cut_after = None
                    upstream.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    upstream.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        threading.Thread(target=to_server, daemon=True).start()
        try:
            while data := upstream.recv(65536):
                limit, sent = state["limit"], state["sent"]
                if limit is not None and sent + len(data) >= limit:
                    client.sendall(data[:max(limit - sent, 0)])
                    break
                client.sendall(data)
                state["sent"] = sent + len(data)
        except OSError:
            pass
        finally:
            for sock in (client, upstream):  # shutdown wakes the other thread's recv
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def close(self) -> None:
        self._stop = True
        self.listener.close()
