"""The content-addressed layer store shared by every pulled image on a node:
compressed blobs as the registry served them (kept for `docker push`), each layer
unpacked once into its own folder, and image roots assembled from those folders with
hard links, whiteouts applied. Everything becomes visible by a rename, so a crash or a
full disk never leaves a half-written blob or layer under its final name.

Layout under STATE/layers::

    blobs/sha256/<hex>        a verified blob (layer tar.gz or image config)
    partial/<hex>             a download in progress (resumed with Range)
    unpacked/<diff id hex>/   a layer's files, whiteout markers included
"""

from __future__ import annotations

import asyncio
import errno
import os
import pathlib
import shutil
import stat
import tempfile
from collections import defaultdict

from flock.agent.runtimes.exec.errors import ApiError
from flock.agent.runtimes.exec.imports import extract_rootfs

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


class LayerStore:
    def __init__(self, state_dir: pathlib.Path) -> None:
        self.root = state_dir / "layers"
        self.blobs = self.root / "blobs" / "sha256"
        self.partial = self.root / "partial"
        self.unpacked = self.root / "unpacked"
        for folder in (self.blobs, self.partial, self.unpacked):
            folder.mkdir(parents=True, exist_ok=True)
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # --- blobs -----------------------------------------------------------------------
    def blob_path(self, digest: str) -> pathlib.Path:
        return self.blobs / _hex(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def partial_path(self, digest: str) -> str:
        return str(self.partial / _hex(digest))

    def commit_blob(self, digest: str) -> None:
        """A verified download takes its final name."""
        os.replace(self.partial_path(digest), self.blob_path(digest))

    def write_blob(self, digest: str, content: bytes) -> None:
        tmp = self.partial / f".{_hex(digest)}.{os.getpid()}"
        tmp.write_bytes(content)
        os.replace(tmp, self.blob_path(digest))

    # --- layers ----------------------------------------------------------------------
    def layer_dir(self, diff_id: str) -> pathlib.Path:
        return self.unpacked / _hex(diff_id)

    def has_layer(self, diff_id: str) -> bool:
        return self.layer_dir(diff_id).is_dir()

    def unpack(self, digest: str, diff_id: str) -> int:
        """Unpack a verified blob once; its uncompressed stream must hash to diff_id.
        Returns the layer's size in bytes."""
        staging = tempfile.mkdtemp(prefix=".unpack-", dir=self.unpacked)
        try:
            try:
                got, size = extract_rootfs(str(self.blob_path(digest)), staging)
            except ApiError as exc:
                raise ApiError(500, f"failed to register layer: {exc.message}") from None
            except OSError as exc:
                raise ApiError(500, _disk_text("failed to register layer", exc)) from None
            if got != diff_id:
                raise ApiError(500, f"failed to register layer: layer {digest} has diff id "
                                    f"{got}, the image config says {diff_id}")
            os.replace(staging, self.layer_dir(diff_id))
            return size
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def assemble(self, diff_ids: list[str], dest: pathlib.Path) -> None:
        """Build an image root in dest from its layers, bottom first."""
        dest.mkdir(parents=True, exist_ok=True)
        try:
            for diff_id in diff_ids:
                apply_layer(str(self.layer_dir(diff_id)), str(dest))
        except OSError as exc:
            raise ApiError(500, _disk_text("failed to assemble the image root", exc)) from None

    # --- garbage ---------------------------------------------------------------------
    def collect(self, keep_layers: set[str], keep_blobs: set[str]) -> None:
        """Drop layers and blobs no image uses any more."""
        for folder in self.unpacked.iterdir():
            if not folder.name.startswith(".") and f"sha256:{folder.name}" not in keep_layers:
                shutil.rmtree(folder, ignore_errors=True)
        for blob in self.blobs.iterdir():
            if f"sha256:{blob.name}" not in keep_blobs:
                blob.unlink(missing_ok=True)


def _disk_text(what: str, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"{what}: no space left on device"
    return f"{what}: {exc}"


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def apply_layer(src: str, dst: str) -> None:
    """Lay one unpacked layer over dst as dockerd's UnpackLayer does: `.wh.NAME` deletes
    NAME below, `.wh..wh..opq` empties its folder below, anything else replaces what is
    there (a folder over a folder merges). Files are hard links into the layer store."""
    names = os.listdir(src)
    if OPAQUE in names:
        for child in os.listdir(dst):
            _remove(os.path.join(dst, child))
    for name in names:
        if name.startswith(WHITEOUT) and name != OPAQUE:
            _remove(os.path.join(dst, name[len(WHITEOUT):]))
    for name in names:
        if name.startswith(WHITEOUT):
            continue
        source, target = os.path.join(src, name), os.path.join(dst, name)
        info = os.lstat(source)
        if stat.S_ISDIR(info.st_mode):
            if os.path.lexists(target) and (os.path.islink(target)
                                            or not os.path.isdir(target)):
                os.unlink(target)
            if not os.path.lexists(target):
                os.mkdir(target)
            apply_layer(source, target)
            _copy_attrs(info, target)
        else:
            _remove(target)
            _link(source, target)


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
            raise
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        else:
            shutil.copy2(source, target, follow_symlinks=False)


def _copy_attrs(info: os.stat_result, target: str) -> None:
    os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    os.chmod(target, stat.S_IMODE(info.st_mode))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
