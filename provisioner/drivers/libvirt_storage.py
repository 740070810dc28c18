"""Disks for libvirt VMs: the image files a user points at, and their copies in a libvirt
storage pool.

Why a pool, and why upload: with qemu:///system, QEMU runs as `libvirt-qemu` and libvirt
hands it each disk by changing the file's owner (dynamic ownership). That makes the file
readable, but not the folders above it: a disk in the machine's store (~/.flock, or a
pytest tmp folder, both 0700) cannot be opened by QEMU whatever its owner. So every file
the VM reads lives in a directory pool (default `flock`; a pool the driver makes lives in
/var/lib/libvirt/images/NAME, mode 0711): the image, its kernel and initrd are uploaded
once through libvirt's own stream API (which also works for a remote qemu+ssh:// host) as
read-only (0644) base volumes shared by every machine made from them, and each machine
gets a qcow2 overlay volume backed by the base. Base volumes are a cache, like Docker
Machine's ISO cache: removing a machine deletes its overlay, not the base other machines
may use (`virsh vol-delete --pool flock NAME` frees it).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flock.provisioner.drivers import libvirt_xml as lx
from flock.provisioner.drivers.base import Progress
from flock.provisioner.drivers.libvirt_conn import error_text, libvirt_module
from flock.provisioner.errors import DriverError, MachineError

DEFAULT_POOL = "flock"
DEFAULT_POOL_PATH = "/var/lib/libvirt/images/flock"
BUILD_HINT = "build one with deploy/vm-image/build.sh OUT_DIR"
POOL_TYPES = ("dir", "fs", "netfs")
_local_lock = threading.Lock()


@dataclass(frozen=True)
class ImageFiles:
    """A bootable image: the disk (qcow2 or raw, ext4 on /dev/vda) and, next to it with the
    same stem, the kernel (.vmlinuz), initrd (.initrd) and kernel command line (.cmdline,
    optional) that deploy/vm-image/build.sh writes. The VM boots the kernel directly: no
    bootloader, no cloud-init, the SSH key travels on the command line."""

    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str
    fmt: str
    virtual_size: int

    @classmethod
    def find(cls, image: str) -> ImageFiles:
        if not image:
            raise MachineError("the libvirt driver needs an image: pass --libvirt-image "
                               f"PATH.qcow2 or set FLOCK_LIBVIRT_IMAGE ({BUILD_HINT})")
        disk = Path(image).expanduser().absolute()
        if not disk.is_file():
            raise MachineError(f"--libvirt-image {image}: no such file ({BUILD_HINT})")
        stem = disk.with_suffix("")
        kernel, initrd = stem.with_suffix(".vmlinuz"), stem.with_suffix(".initrd")
        for path, what in ((kernel, "kernel"), (initrd, "initrd")):
            if not path.is_file():
                raise MachineError(
                    f"--libvirt-image {image}: its {what} {path.name} is missing next to it. "
                    "The libvirt driver boots the image's kernel directly (the SSH key goes "
                    f"on the kernel command line), so it needs {stem.name}.vmlinuz and "
                    f"{stem.name}.initrd beside the disk: {BUILD_HINT}")
        cmdline_file = stem.with_suffix(".cmdline")
        cmdline = cmdline_file.read_text().strip() if cmdline_file.is_file() else ""
        fmt, size = probe(disk)
        return cls(disk, kernel, initrd, cmdline or lx.DEFAULT_CMDLINE, fmt, size)

    def key(self) -> str:
        """Names the pool's copies: a changed file (rebuilt image) gets new base volumes."""
        h = hashlib.sha256()
        for path in (self.disk, self.kernel, self.initrd):
            st = path.stat()
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        return h.hexdigest()[:12]

    def base_names(self) -> dict[str, str]:
        """Volume names of the disk, kernel and initrd copies in the pool."""
        prefix = f"{self.disk.stem}-{self.key()}"
        return {"disk": f"{prefix}.{self.fmt}", "kernel": f"{prefix}.vmlinuz",
                "initrd": f"{prefix}.initrd"}


def probe(path: Path) -> tuple[str, int]:
    """(format, virtual size) from the file itself: qcow2 by its header, raw otherwise."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError as exc:
        raise MachineError(f"--libvirt-image {path}: cannot read it ({exc.strerror})") from None
    if head[:4] == b"QFI\xfb":
        backing_offset, = struct.unpack(">Q", head[8:16])
        if backing_offset:
            raise MachineError(f"--libvirt-image {path} is itself an overlay of another "
                               "image: flatten it with 'qemu-img convert -O qcow2 IN OUT'")
        size, = struct.unpack(">Q", head[24:32])
        return "qcow2", size
    return "raw", path.stat().st_size


@contextlib.contextmanager
def upload_lock() -> Iterator[None]:
    """One upload at a time on this host (machines made in parallel share base volumes)."""
    folder = "/run/lock" if os.access("/run/lock", os.W_OK) else tempfile.gettempdir()
    with _local_lock, open(os.path.join(folder, "flock-libvirt-upload.lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_pool(conn: Any, name: str, progress: Progress) -> Any:
    """The pool, defined (folder mode 0711, autostart) and started when needed."""
    libvirt = libvirt_module()
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise DriverError(f"libvirt storage pool {name}: {error_text(exc)}") from None
        path = str(Path(DEFAULT_POOL_PATH).parent / name)
        progress(f"Creating libvirt storage pool {name} in {path}")
        try:
            pool = conn.storagePoolDefineXML(lx.pool_xml(name, path), 0)
            pool.build(0)
            pool.setAutostart(1)
        except libvirt.libvirtError as exc:
            raise DriverError(f"cannot create the libvirt storage pool {name} at {path}: "
                              f"{error_text(exc)}; create it yourself (virsh pool-define-as "
                              f"{name} dir --target DIR) or pass --libvirt-pool") from None
    kind = lx.ET.fromstring(pool.XMLDesc(0)).get("type")
    if kind not in POOL_TYPES:
        raise MachineError(f"libvirt storage pool {name} is of type {kind}: the libvirt "
                           f"driver needs a folder pool ({', '.join(POOL_TYPES)}); pass "
                           "--libvirt-pool NAME of one")
    if not pool.isActive():
        try:
            pool.create(0)
        except libvirt.libvirtError as exc:
            raise DriverError(f"cannot start the libvirt storage pool {name}: {error_text(exc)}; "
                              f"try 'virsh pool-start {name}'") from None
    with contextlib.suppress(libvirt.libvirtError):
        pool.refresh(0)
    return pool


def find_volume(pool: Any, name: str) -> Any | None:
    libvirt = libvirt_module()
    try:
        return pool.storageVolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
            return None
        raise DriverError(f"libvirt volume {name}: {error_text(exc)}") from None


def _physical_size(vol: Any) -> int:
    libvirt = libvirt_module()
    try:
        return vol.infoFlags(libvirt.VIR_STORAGE_VOL_GET_PHYSICAL)[2]
    except (libvirt.libvirtError, AttributeError):
        return vol.info()[2]


def ensure_base(conn: Any, pool: Any, image: ImageFiles, progress: Progress) -> dict[str, str]:
    """Paths (on the libvirt host) of the pool's copies of the image, kernel and initrd;
    uploaded when missing. A copy whose size differs (an upload cut short) is replaced."""
    files = {"disk": image.disk, "kernel": image.kernel, "initrd": image.initrd}
    paths: dict[str, str] = {}
    with upload_lock():
        for role, vol_name in image.base_names().items():
            local = files[role]
            size = local.stat().st_size
            vol = find_volume(pool, vol_name)
            if vol is not None and _physical_size(vol) != size:
                progress(f"Replacing the incomplete copy {vol_name}")
                vol.delete(0)
                vol = None
            if vol is None:
                progress(f"Copying {local.name} into storage pool {pool.name()} "
                         f"({size / 2**20:.0f} MiB, once per image)")
                vol = upload(conn, pool, vol_name, local)
            paths[role] = vol.path()
    return paths


def upload(conn: Any, pool: Any, vol_name: str, local: Path) -> Any:
    """A new read-only (0644) volume with the bytes of `local`, through libvirt's stream."""
    libvirt = libvirt_module()
    size = local.stat().st_size
    try:
        vol = pool.createXML(lx.volume_xml(vol_name, size, "raw", mode="0644"), 0)
    except libvirt.libvirtError as exc:
        raise DriverError(f"cannot create volume {vol_name} in pool {pool.name()}: "
                          f"{error_text(exc)}") from None
    stream = None
    try:
        stream = conn.newStream(0)
        vol.upload(stream, 0, size, 0)
        with open(local, "rb") as fh:
            stream.sendAll(lambda _st, nbytes, f: f.read(nbytes), fh)
        stream.finish()
        stream = None
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh(0)   # libvirt probes the copy's format (qcow2) again
        return pool.storageVolLookupByName(vol_name)
    except BaseException as exc:
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.abort()
        with contextlib.suppress(Exception):
            vol.delete(0)
        if isinstance(exc, libvirt.libvirtError):
            raise DriverError(f"cannot upload {local} into pool {pool.name()}: "
                              f"{error_text(exc)}") from None
        raise


def create_overlay(pool: Any, vol_name: str, base_path: str, base_format: str,
                   capacity: int) -> Any:
    """The machine's own disk: qcow2, backed by the base, `capacity` bytes (the image's
    flock-vm-init grows the file system to it at boot)."""
    libvirt = libvirt_module()
    try:
        return pool.createXML(lx.volume_xml(vol_name, capacity, "qcow2", backing=base_path,
                                            backing_format=base_format), 0)
    except libvirt.libvirtError as exc:
        raise DriverError(f"cannot create the disk {vol_name} in pool {pool.name()}: "
                          f"{error_text(exc)}") from None


def delete_volume(pool: Any, vol_name: str) -> None:
    """Gone already is fine."""
    vol = find_volume(pool, vol_name)
    if vol is not None:
        libvirt = libvirt_module()
        try:
            vol.delete(0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise DriverError(f"cannot delete volume {vol_name}: {error_text(exc)}") from None
