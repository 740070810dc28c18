"""A real Docker registry for tests: Debian's `docker-registry` on a free loopback port,
storage in the test's tmp dir, stopped by PID. Engines pull from and push to a
127.0.0.0/8 registry over plain HTTP without any configuration (it is trusted)."""

from __future__ import annotations

import json
import pathlib
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from tests.conftest import free_port

CONFIG = """\
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


def have_registry() -> bool:
    return shutil.which("docker-registry") is not None


@dataclass
class Registry:
    """A running registry; `ref("busybox")` is `127.0.0.1:PORT/busybox`."""

    port: int
    proc: subprocess.Popen
    root: pathlib.Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ref(self, repo: str) -> str:
        return f"{self.address}/{repo}"

    def tags(self, repo: str) -> list[str]:
        """The tags the registry holds for `repo` (its own HTTP API; [] when none)."""
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/{repo}/tags/list",
                                        timeout=10) as answer:
                return json.loads(answer.read()).get("tags") or []
        except urllib.error.HTTPError:
            return []

    def push_busybox(self, engine, repo: str) -> None:
        """Put the engine's busybox in the registry as REG/`repo`, pushed by the engine
        itself; the engine keeps no REG/`repo` tag, so a pull has something to do."""
        engine.docker("tag", "busybox:latest", self.ref(repo))
        engine.docker("push", self.ref(repo))
        engine.docker("rmi", self.ref(repo))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_registry(root: pathlib.Path, timeout: float = 20, extra_config: str = "") -> Registry:
    """Start `docker-registry serve` with its own config and storage under `root`;
    `extra_config` is more of its YAML config (an `auth:` section, say)."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = root / "config.yml"
    config.write_text(CONFIG.format(root=root / "data", port=port) + extra_config)
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    registry = Registry(port, proc, root)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {(root / 'registry.log').read_text()}")
        try:
            with urllib.request.urlopen(f"http://{registry.address}/v2/", timeout=2):
                return registry
        except urllib.error.HTTPError:
            return registry  # 401: it answers, and wants credentials
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    registry.stop()
    raise RuntimeError(f"docker-registry did not answer on {registry.address} in {timeout}s")
