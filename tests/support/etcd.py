"""A real etcd for tests: free ports (clients on loopback unless `ip` says otherwise),
its own data dir, stopped by PID.

`stop()` / `start()` again keep the data dir, so a test can take etcd away for a while
and bring the same cluster back (leases and keys included).
"""

from __future__ import annotations

import pathlib
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field

from tests.support.ports import free_port

_free_port = free_port


def have_etcd() -> bool:
    return shutil.which("etcd") is not None


@dataclass
class Etcd:
    root: pathlib.Path
    client_port: int = field(default_factory=_free_port)
    peer_port: int = field(default_factory=_free_port)
    proc: subprocess.Popen | None = None
    # Where clients reach it: a veth or bridge address when a namespace or a VM must.
    ip: str = "127.0.0.1"

    @property
    def endpoint(self) -> str:
        return f"{self.ip}:{self.client_port}"

    def url(self, prefix: str = "/flock") -> str:
        return f"etcd://{self.endpoint}{prefix}"

    def start(self, timeout: float = 20) -> Etcd:
        self.root.mkdir(parents=True, exist_ok=True)
        client = f"http://{self.endpoint}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = open(self.root / "etcd.log", "ab")
        self.proc = subprocess.Popen(
            ["etcd", "--name", "test", "--data-dir", str(self.root / "data"),
             "--listen-client-urls", client, "--advertise-client-urls", client,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"test={peer}", "--heartbeat-interval", "50",
             "--election-timeout", "300"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("etcd exited:\n" + self.log_tail())
            if self._healthy():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not become healthy:\n" + self.log_tail())

    def _healthy(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as answer:
                return b"true" in answer.read()
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        path = self.root / "etcd.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # Plain-HTTP access through etcd's JSON gateway, independent of the code under test.
    def put(self, key: str, value: str) -> None:
        self._gateway("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    def keys(self, prefix: str) -> dict[str, str]:
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        answer = self._gateway("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)})
        return {_unb64(kv["key"]): _unb64(kv.get("value", "")) for kv in answer.get("kvs", [])}

    def _gateway(self, path: str, body: dict) -> dict:
        import json
        import urllib.request

        request = urllib.request.Request(f"http://{self.endpoint}{path}",
                                         data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as answer:
            return json.loads(answer.read())


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    import base64

    return base64.b64decode(text).decode(errors="replace")
