"""A real Docker registry for tests: the product's own (flock.local_registry, Debian's
`docker-registry` on a free loopback port, stopped by PID) with its storage in the test's
tmp dir and deletes allowed. Engines pull from and push to a 127.0.0.0/8 registry over
plain HTTP without any configuration (it is trusted)."""

from __future__ import annotations

import json
import pathlib
import urllib.error
import urllib.request
from dataclasses import dataclass

from flock.local_registry import LocalRegistry, have_registry

__all__ = ["Registry", "have_registry", "start_registry"]


@dataclass
class Registry(LocalRegistry):
    """A running registry; `ref("busybox")` is `127.0.0.1:PORT/busybox`."""

    log_level: str = "warn"
    deletes: bool = True

    @property
    def root(self) -> pathlib.Path:
        return self.folder

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

    def push_busybox(self, engine, repo: str, config: pathlib.Path | None = None) -> None:
        """Put the engine's busybox in the registry as REG/`repo`, pushed by the engine
        itself; the engine keeps no REG/`repo` tag, so a pull has something to do.
        `config`: the docker CLI config folder holding the login a locked registry wants."""
        login = ["--config", str(config)] if config is not None else []
        engine.docker("tag", "busybox:latest", self.ref(repo))
        engine.docker(*login, "push", self.ref(repo))
        engine.docker("rmi", self.ref(repo))


def start_registry(root: pathlib.Path, timeout: float = 20, extra_config: str = "") -> Registry:
    """Start `docker-registry serve` with its own config and storage under `root`;
    `extra_config` is more of its YAML config (an `auth:` section, say)."""
    registry = Registry(root, extra_config=extra_config)
    registry.start(timeout)
    return registry
