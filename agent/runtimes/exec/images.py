"""Images: root folders imported from tars or pulled from registries, with their config,
tags and digests."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pathlib
import platform
import shutil
import tempfile
from collections.abc import Callable

from flock.agent.runtimes.exec import references
from flock.agent.runtimes.exec.errors import ApiError, bad_request, conflict, not_found
from flock.agent.runtimes.exec.events import EventBus
from flock.agent.runtimes.exec.imports import apply_changes, empty_config, extract_rootfs
from flock.agent.runtimes.exec.registry.layers import LayerStore
from flock.agent.runtimes.exec.store import ImageRecord, ImageStore
from flock.agent.runtimes.exec.timefmt import now_rfc, parse_rfc3339nano

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(
    platform.machine(), platform.machine())

# (container id, running) for every container made from an image id
UsersOf = Callable[[str], list[tuple[str, bool]]]


class ImageManager:
    def __init__(self, store: ImageStore, bus: EventBus, users_of: UsersOf) -> None:
        self.store = store
        self.bus = bus
        self.users_of = users_of
        self.records = store.load_all()
        self.lock = asyncio.Lock()
        self.layers = LayerStore(store.root.parent)
        self.insecure_registries: frozenset[str] = frozenset()
        self.pulls = 0  # in progress: their layers are not in any record yet

    # --- lookup ----------------------------------------------------------------------
    def find(self, name: str) -> ImageRecord | None:
        """By tag, by full id (with or without sha256:), or by unique id prefix."""
        bare = name.removeprefix("sha256:")
        if bare and all(c in "0123456789abcdef" for c in bare):
            if f"sha256:{bare}" in self.records:
                return self.records[f"sha256:{bare}"]
            found = [r for r in self.records.values() if r.hex.startswith(bare)]
            if len(found) == 1 and (len(bare) >= 4 or name.startswith("sha256:")):
                return found[0]
        try:
            ref = references.normalize(name)
        except ApiError:
            return None
        for record in self.records.values():
            if ref in record.repo_tags or ref in record.repo_digests:
                return record
        return None

    def get(self, name: str) -> ImageRecord:
        record = self.find(name)
        if record is None:
            raise not_found(f"No such image: {_display(name)}")
        return record

    def rootfs(self, record: ImageRecord) -> str:
        return str(self.store.rootfs(record.hex))

    # --- import ----------------------------------------------------------------------
    async def import_tar(self, tar_path: str, ref: str, changes: list[str],
                         message: str) -> ImageRecord:
        """Extract a root-folder tar into a new image; tag it with ref if given."""
        config = apply_changes(empty_config(), changes)
        staging = tempfile.mkdtemp(prefix=".import-", dir=self.store.root)
        try:
            diff_id, size = await asyncio.to_thread(
                extract_rootfs, tar_path, os.path.join(staging, "rootfs"))
            created = now_rfc()
            manifest = {"architecture": ARCH, "os": "linux", "config": config,
                        "created": created, "comment": message,
                        "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
            image_hex = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
            record = ImageRecord(id=f"sha256:{image_hex}", repo_tags=[], created=created,
                                 config=config, comment=message, size=size, diff_id=diff_id)
            os.replace(staging, self.store.dir(image_hex))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.records[record.id] = record
        self.store.save(record)
        self.bus.emit("image", "import", record.id, {"name": record.id})
        if ref:
            self.tag(record, ref)
        return record

    # --- pull ------------------------------------------------------------------------
    async def add_pulled(self, pulled) -> ImageRecord:
        """Record a pulled image (registry.pull.Pulled): its root assembled from the
        layer store under a temporary name first, so a failure leaves no image."""
        async with self.lock:  # two pulls of one image assemble it once
            record = self.records.get(pulled.config_digest)
            if record is None:
                record = await asyncio.to_thread(self._assemble, pulled)
                self.records[record.id] = record
                self.store.save(record)
        if pulled.repo_digest not in record.repo_digests:
            for other in self.records.values():
                if pulled.repo_digest in other.repo_digests and other is not record:
                    other.repo_digests.remove(pulled.repo_digest)
                    self.store.save(other)
            record.repo_digests.append(pulled.repo_digest)
            self.store.save(record)
        if not references.is_digest(pulled.ref):
            self.tag(record, pulled.ref, event=False)
        self.bus.emit("image", "pull", record.id, {"name": pulled.ref})
        return record

    def _assemble(self, pulled) -> ImageRecord:
        config = pulled.config
        image_hex = pulled.config_digest.split(":", 1)[1]
        staging = pathlib.Path(tempfile.mkdtemp(prefix=".pull-", dir=self.store.root))
        try:
            self.layers.assemble(pulled.diff_ids, staging / "rootfs")
            size = _tree_size(staging / "rootfs")
            record = ImageRecord(
                id=pulled.config_digest, repo_tags=[],
                created=config.get("created") or now_rfc(),
                config={**empty_config(), **(config.get("config") or {})},
                comment=config.get("comment") or "", size=size,
                diff_id=pulled.diff_ids[-1] if pulled.diff_ids else "",
                layers=list(pulled.diff_ids), blobs=list(pulled.blobs),
                architecture=config.get("architecture") or ARCH, os=config.get("os") or "linux")
            os.replace(staging, self.store.dir(image_hex))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return record

    # --- tags and removal ------------------------------------------------------------
    def tag(self, record: ImageRecord, ref: str, event: bool = True) -> None:
        """Point ref at this image, taking it away from any image that had it."""
        ref = references.normalize(ref)
        if references.is_digest(ref):
            raise bad_request("refusing to create a tag with a digest reference")
        for other in self.records.values():
            if other is not record and ref in other.repo_tags:
                other.repo_tags.remove(ref)
                self.store.save(other)
        if ref not in record.repo_tags:
            record.repo_tags.append(ref)
        record.last_tag_time = now_rfc()
        self.store.save(record)
        if event:
            self.bus.emit("image", "tag", record.id, {"name": ref})

    def remove(self, name: str, force: bool) -> list[dict]:
        record = self.get(name)
        by_tag = self._names_tag(name, record)
        users = self.users_of(record.id)
        running = [cid for cid, up in users if up]
        if by_tag and (len(record.repo_tags) > 1 or not users):
            return self._untag(record, [by_tag]) + self._maybe_delete(record, users)
        short = record.hex[:12]
        if by_tag and not force:
            raise conflict(f'conflict: unable to remove repository reference "{name}" '
                           f"(must force) - container {users[0][0][:12]} is using its "
                           f"referenced image {short}")
        if running and not by_tag:
            raise conflict(f"conflict: unable to delete {short} (cannot be forced) - image "
                           f"is being used by running container {running[0][:12]}")
        if not force and len(record.repo_tags) > 1:
            raise conflict(f"conflict: unable to delete {short} (must be forced) - image is "
                           f"referenced in multiple repositories")
        if not force and users:
            raise conflict(f"conflict: unable to delete {short} (must be forced) - image is "
                           f"being used by stopped container {users[0][0][:12]}")
        return self._untag(record, list(record.repo_tags)) + self._maybe_delete(record, users)

    def _names_tag(self, name: str, record: ImageRecord) -> str:
        try:
            ref = references.normalize(name)
        except ApiError:
            return ""
        return ref if ref in record.repo_tags else ""

    def _untag(self, record: ImageRecord, refs: list[str]) -> list[dict]:
        answer = []
        for ref in refs:
            record.repo_tags.remove(ref)
            self.bus.emit("image", "untag", record.id, {"name": ref})
            answer.append({"Untagged": ref})
        self.store.save(record)
        return answer

    def _maybe_delete(self, record: ImageRecord, users: list) -> list[dict]:
        """An image a container still runs from stays, untagged, until that is gone."""
        if record.repo_tags or users:
            return []
        del self.records[record.id]
        self.store.remove(record.hex)
        self._collect_layers()
        self.bus.emit("image", "delete", record.id, {"name": record.id})
        return [{"Deleted": record.id}]

    def _collect_layers(self) -> None:
        """Layers and blobs stay while any image uses them (they are shared); none go
        while a pull runs (the next removal collects them)."""
        if self.pulls:
            return
        keep_layers = {d for r in self.records.values() for d in r.layers}
        keep_blobs = {b["digest"] for r in self.records.values() for b in r.blobs}
        keep_blobs |= {r.id for r in self.records.values() if r.layers}
        self.layers.collect(keep_layers, keep_blobs)

    # --- views -----------------------------------------------------------------------
    def summary(self, record: ImageRecord) -> dict:
        return {"Containers": -1, "Created": parse_rfc3339nano(record.created) // 10**9,
                "Id": record.id, "Labels": record.config.get("Labels"), "ParentId": "",
                "RepoDigests": list(record.repo_digests),
                "RepoTags": record.repo_tags or ["<none>:<none>"],
                "SharedSize": -1, "Size": record.size, "VirtualSize": record.size}

    def inspect(self, record: ImageRecord) -> dict:
        from flock.agent.runtimes.exec.system import VERSION

        return {"Id": record.id, "RepoTags": list(record.repo_tags),
                "RepoDigests": list(record.repo_digests),
                "Parent": "", "Comment": record.comment, "Created": record.created,
                "Container": "", "ContainerConfig": empty_config(), "DockerVersion": VERSION,
                "Author": "", "Config": record.config,
                "Architecture": record.architecture or ARCH, "Os": record.os or "linux",
                "Size": record.size, "VirtualSize": record.size,
                "GraphDriver": {"Name": "exec",
                                "Data": {"RootDir": str(self.store.rootfs(record.hex))}},
                "RootFS": {"Type": "layers", "Layers": record.layers or [record.diff_id]},
                "Metadata": {"LastTagTime": record.last_tag_time or "0001-01-01T00:00:00Z"}}

    def listing(self, filters: dict[str, list[str]]) -> list[dict]:
        import fnmatch

        chosen = []
        for record in sorted(self.records.values(), key=lambda r: r.created, reverse=True):
            if "dangling" in filters:
                want = filters["dangling"][0].lower() in ("1", "true")
                if want != (not record.repo_tags):
                    continue
            if "reference" in filters and not any(
                    fnmatch.fnmatch(tag, pat) or fnmatch.fnmatch(references.split(tag)[0], pat)
                    for tag in record.repo_tags for pat in filters["reference"]):
                continue
            labels = record.config.get("Labels") or {}
            if "label" in filters and not all(
                    labels.get(w.partition("=")[0]) == w.partition("=")[2] if "=" in w
                    else w in labels for w in filters["label"]):
                continue
            chosen.append(self.summary(record))
        return chosen


def _display(name: str) -> str:
    """How the Engine names a missing image: tags get `:latest` filled in."""
    try:
        return references.normalize(name)
    except ApiError:
        return name


def _tree_size(root: pathlib.Path) -> int:
    """Bytes of the regular files under root, each inode once."""
    seen: set[int] = set()
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            info = os.lstat(os.path.join(folder, name))
            if info.st_ino not in seen:
                seen.add(info.st_ino)
                total += info.st_size
    return total


def check_import_source(from_src: str) -> None:
    if from_src != "-":
        raise bad_request("the exec runtime imports only from the request body (fromSrc=-)")

