"""Persistent records under the state folder. The disk is the truth: a restarted runtime
rebuilds everything from here, and the shims write their side (pid, exit code) here too.

Layout::

    engine-id                     the stable ID `info` reports
    images/<hex>/image.json       ImageRecord;   images/<hex>/rootfs/  the root folder
    containers/<hex>/config.json  ContainerRecord
    containers/<hex>/spec.json    what the shim runs (rewritten on every start)
    containers/<hex>/state.json   written by the shim once the process runs
    containers/<hex>/exit.json    written by the shim (or the runtime) when it ended
    containers/<hex>/container.log  json-file style log lines
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any


def write_json_atomic(path: pathlib.Path, data: Any) -> None:
    """Write via a temporary file and rename, so a reader never sees half a record."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def folder_size(path: pathlib.Path) -> int:
    """Bytes in the files below `path`, as `du --apparent-size` counts them; a file that
    goes while it is walked (a running container's) counts nothing."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def read_json(path: pathlib.Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def engine_id(state_dir: pathlib.Path) -> str:
    """Generated once, kept in the state folder, so `info` reports the same ID forever."""
    path = state_dir / "engine-id"
    try:
        existing = path.read_text().strip()
        if existing:
            return existing
    except FileNotFoundError:
        pass
    new = str(uuid.uuid4()).upper()
    path.write_text(new + "\n")
    return new


@dataclass
class ContainerRecord:
    """What `create` decided; never changes while the container lives except for the
    name (rename), the restart count and the bookkeeping of reported exits."""

    id: str
    name: str
    created: str
    image_id: str
    image_ref: str
    config: dict
    host_config: dict
    path: str
    args: list[str]
    restart_count: int = 0
    reported_finish: str = ""  # FinishedAt of the last exit announced with a `die` event
    manually_stopped: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict) -> ContainerRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class ImageRecord:
    id: str  # "sha256:<64 hex>"
    repo_tags: list[str]
    created: str
    config: dict
    comment: str = ""
    size: int = 0
    diff_id: str = ""
    last_tag_time: str = ""
    # pulled images (registry/): every layer's diff id, the layer blobs' descriptors
    # as the registry served them, `repo@sha256:` of the manifests, platform
    layers: list[str] = field(default_factory=list)
    blobs: list[dict] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    architecture: str = ""
    os: str = ""

    @property
    def hex(self) -> str:
        return self.id.split(":", 1)[1]

    @classmethod
    def from_json(cls, data: dict) -> ImageRecord:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class ContainerStore:
    """Container folders and the files in them."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.root = state_dir / "containers"
        self.root.mkdir(parents=True, exist_ok=True)

    def dir(self, cid: str) -> pathlib.Path:
        return self.root / cid

    def load_all(self) -> dict[str, ContainerRecord]:
        records = {}
        for folder in self.root.iterdir():
            data = read_json(folder / "config.json")
            if data:
                record = ContainerRecord.from_json(data)
                records[record.id] = record
        return records

    def save(self, record: ContainerRecord) -> None:
        folder = self.dir(record.id)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "config.json", asdict(record))

    def run_state(self, cid: str) -> dict | None:
        return read_json(self.dir(cid) / "state.json")

    def exit_state(self, cid: str) -> dict | None:
        return read_json(self.dir(cid) / "exit.json")

    def write_exit(self, cid: str, data: dict) -> None:
        write_json_atomic(self.dir(cid) / "exit.json", data)

    def clear_run(self, cid: str) -> None:
        for name in ("state.json", "exit.json"):
            (self.dir(cid) / name).unlink(missing_ok=True)

    def log_path(self, cid: str) -> pathlib.Path:
        return self.dir(cid) / "container.log"

    def remove(self, cid: str) -> None:
        shutil.rmtree(self.dir(cid), ignore_errors=True)


class ImageStore:
    """Image folders: the record and the extracted root folder."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.root = state_dir / "images"
        self.root.mkdir(parents=True, exist_ok=True)

    def dir(self, image_hex: str) -> pathlib.Path:
        return self.root / image_hex

    def rootfs(self, image_hex: str) -> pathlib.Path:
        return self.dir(image_hex) / "rootfs"

    def load_all(self) -> dict[str, ImageRecord]:
        records = {}
        for folder in self.root.iterdir():
            data = read_json(folder / "image.json")
            if data:
                record = ImageRecord.from_json(data)
                records[record.id] = record
        return records

    def save(self, record: ImageRecord) -> None:
        folder = self.dir(record.hex)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / "image.json", asdict(record))

    def remove(self, image_hex: str) -> None:
        shutil.rmtree(self.dir(image_hex), ignore_errors=True)
