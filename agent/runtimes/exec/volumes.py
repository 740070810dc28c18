"""Named and anonymous volumes of the exec runtime: local folders under the state folder,
`volumes/<name>/_data`, with the record beside it (`volumes/<name>/volume.json`), as
the Engine's local driver keeps them. A volume in use by any container (running or not)
is not removed."""

from __future__ import annotations

import pathlib
import secrets
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from flock.agent.runtimes.exec.errors import ApiError, conflict, not_found
from flock.agent.runtimes.exec.events import EventBus
from flock.agent.runtimes.exec.filters import label_ok
from flock.agent.runtimes.exec.mounts import check_volume_name
from flock.agent.runtimes.exec.store import folder_size, read_json, write_json_atomic
from flock.agent.runtimes.exec.timefmt import now_rfc

ANONYMOUS_LABEL = "com.docker.volume.anonymous"
VOLUME_FILTERS = {"name", "label", "dangling", "driver"}

# the ids of the containers that use a volume name
UsersOf = Callable[[str], list[str]]


@dataclass
class VolumeRecord:
    name: str
    created_at: str
    labels: dict = field(default_factory=dict)
    anonymous: bool = False


class VolumeManager:
    def __init__(self, state_dir: pathlib.Path, bus: EventBus, users_of: UsersOf) -> None:
        self.root = state_dir / "volumes"
        self.root.mkdir(parents=True, exist_ok=True)
        self.bus = bus
        self.users_of = users_of
        self.records = self._load()

    def _load(self) -> dict[str, VolumeRecord]:
        found = {}
        for folder in self.root.iterdir():
            data = read_json(folder / "volume.json")
            if data:
                record = VolumeRecord(**{k: v for k, v in data.items()
                                         if k in VolumeRecord.__dataclass_fields__})
                found[record.name] = record
        return found

    def path(self, name: str) -> pathlib.Path:
        """The folder a container sees (the Engine's Mountpoint)."""
        return self.root / name / "_data"

    # --- the API's operations -----------------------------------------------------------
    def create(self, name: str, labels: dict | None = None, driver: str = "",
               driver_opts: dict | None = None) -> VolumeRecord:
        """An existing name answers the existing volume, as the local driver does."""
        if driver not in ("", "local"):
            raise ApiError(501, f"the exec runtime does not support volume driver {driver}; "
                                f"its volumes are local folders")
        if driver_opts:
            raise ApiError(501, "the exec runtime does not support options of the local "
                                "volume driver (type, device, o); its volumes are plain "
                                "folders")
        anonymous = not name
        name = name or secrets.token_hex(32)
        check_volume_name(name)
        if name in self.records:
            return self.records[name]
        labels = dict(labels or {})
        if anonymous:
            labels[ANONYMOUS_LABEL] = ""
        record = VolumeRecord(name, now_rfc(), labels, anonymous)
        self.path(name).mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.root / name / "volume.json", asdict(record))
        self.records[name] = record
        self.bus.emit("volume", "create", name, {"driver": "local"})
        return record

    def get(self, name: str) -> VolumeRecord:
        record = self.records.get(name)
        if record is None:
            raise not_found(f"get {name}: no such volume")
        return record

    def remove(self, name: str, force: bool = False) -> None:
        """`force` only forgives a missing volume; one in use is refused either way."""
        if name not in self.records:
            if force:
                return
            raise not_found(f"get {name}: no such volume")
        users = self.users_of(name)
        if users:
            raise conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
        shutil.rmtree(self.root / name, ignore_errors=True)
        del self.records[name]
        self.bus.emit("volume", "destroy", name, {"driver": "local"})

    def prune(self, filters: dict[str, list[str]]) -> tuple[list[str], int]:
        deleted, reclaimed = [], 0
        for record in list(self.records.values()):
            if self.users_of(record.name) or not label_ok(record.labels,
                                                          filters.get("label", [])):
                continue
            size = folder_size(self.path(record.name))
            self.remove(record.name)
            deleted.append(record.name)
            reclaimed += size
        return deleted, reclaimed

    def listing(self, filters: dict[str, list[str]]) -> list[VolumeRecord]:
        return [r for r in sorted(self.records.values(), key=lambda r: r.name)
                if self._matches(r, filters)]

    def _matches(self, record: VolumeRecord, filters: dict[str, list[str]]) -> bool:
        if filters.get("name") and not any(w in record.name for w in filters["name"]):
            return False
        if filters.get("driver") and "local" not in filters["driver"]:
            return False
        for wanted in filters.get("dangling", []):
            if wanted.lower() in ("true", "1") and self.users_of(record.name):
                return False
            if wanted.lower() in ("false", "0") and not self.users_of(record.name):
                return False
        return label_ok(record.labels, filters.get("label", []))

    def view(self, record: VolumeRecord) -> dict:
        """The Engine's Volume object."""
        return {"CreatedAt": record.created_at, "Driver": "local", "Labels": record.labels,
                "Mountpoint": str(self.path(record.name)), "Name": record.name,
                "Options": {}, "Scope": "local"}

    # --- for containers ---------------------------------------------------------------
    def for_container(self, name: str, image_rootfs: str, target: str,
                      copy: bool) -> VolumeRecord:
        """The volume a container mounts, made on first use; a new (empty) volume gets
        what the image holds at the mount point, as the Engine copies it."""
        fresh = name not in self.records
        record = self.create(name)
        if copy and fresh:
            _copy_image_content(pathlib.Path(image_rootfs), target, self.path(record.name))
        return record


def _copy_image_content(rootfs: pathlib.Path, target: str, into: pathlib.Path) -> None:
    source = rootfs / target.lstrip("/")
    if source.is_symlink() or not source.is_dir() or any(into.iterdir()):
        return
    shutil.copytree(source, into, symlinks=True, dirs_exist_ok=True)

