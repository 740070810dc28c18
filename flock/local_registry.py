"""A Docker registry on this machine for `flock demo`: Debian's `docker-registry` on a
free loopback port (engines and the exec runtime pull from 127.0.0.0/8 over plain
HTTP with no option), its storage in a folder of ours, stopped by PID; and a one-layer
image written into it through the registry's HTTP API, so no engine is needed to fill it."""

from __future__ import annotations

import gzip
import hashlib
import json
import pathlib
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from flock.local_cluster import free_port

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG = """\
version: 0.1
log:
  level: {level}
storage:
  filesystem:
    rootdirectory: {root}
{delete}http:
  addr: 127.0.0.1:{port}
"""
DELETE = "  delete:\n    enabled: true\n"


def have_registry() -> bool:
    return shutil.which("docker-registry") is not None


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class LocalRegistry:
    """`deletes` lets clients delete manifests and blobs; `extra_config` is more of the
    registry's YAML config (an `auth:` section, say): the tests' registries need both."""

    folder: pathlib.Path
    port: int = 0
    proc: subprocess.Popen | None = None
    log_level: str = "error"
    deletes: bool = False
    extra_config: str = ""

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = self.folder / "config.yml"
        config.write_text(CONFIG.format(
            level=self.log_level, root=self.folder / "data", port=self.port,
            delete=DELETE if self.deletes else "") + self.extra_config)
        with open(self.folder / "registry.log", "wb") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve", str(config)],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("docker-registry exited: "
                                   + (self.folder / "registry.log").read_text()[-500:])
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # 401: it answers, and wants credentials
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.address}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def push_rootfs(self, repo: str, tag: str, rootfs_tar: bytes, config: dict) -> str:
        """A one-layer Docker v2 schema 2 image of a root-folder tar; the ref."""
        layer = gzip.compress(rootfs_tar, mtime=0)
        image_config = json.dumps({"architecture": _arch(), "os": "linux", "config": config,
                                   "rootfs": {"type": "layers",
                                              "diff_ids": [digest(rootfs_tar)]}}).encode()
        push_blob(self.address, repo, layer)
        push_blob(self.address, repo, image_config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": len(image_config),
                       "digest": digest(image_config)},
            "layers": [{"mediaType": DOCKER_LAYER, "size": len(layer),
                        "digest": digest(layer)}]}).encode()
        push_manifest(self.address, repo, tag, manifest, DOCKER_MANIFEST)
        return f"{self.address}/{repo}:{tag}"


def push_blob(address: str, repo: str, data: bytes) -> str:
    """A monolithic upload (POST, then PUT with the digest) to a plain-HTTP registry."""
    start = urllib.request.Request(f"http://{address}/v2/{repo}/blobs/uploads/",
                                   data=b"", method="POST")
    with urllib.request.urlopen(start, timeout=30) as answer:
        location = answer.headers["Location"]
    if location.startswith("/"):
        location = f"http://{address}{location}"
    sep = "&" if "?" in location else "?"
    put = urllib.request.Request(f"{location}{sep}digest={digest(data)}", data=data,
                                 method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(put, timeout=60).close()
    return digest(data)


def push_manifest(address: str, repo: str, reference: str, body: bytes, kind: str) -> str:
    put = urllib.request.Request(f"http://{address}/v2/{repo}/manifests/{reference}",
                                 data=body, method="PUT", headers={"Content-Type": kind})
    urllib.request.urlopen(put, timeout=30).close()
    return digest(body)


def _arch() -> str:
    import platform

    return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
