"""A busybox root filesystem made from the host's static busybox binary.

There is no registry to pull from on an offline machine, so the demo and the tests make
their image the way `docker import` expects: a tar of a root folder.
"""

from __future__ import annotations

import io
import shutil
import tarfile

BUSYBOX_APPLETS = (
    "sh", "echo", "sleep", "cat", "ls", "env", "hostname", "ps", "top", "wc", "head",
    "tail", "true", "false", "printf", "id", "mkdir", "rm", "touch", "yes", "seq",
    "date", "uname", "grep", "nc", "wget", "kill", "dd",
)


def busybox_rootfs_tar() -> bytes:
    """A tar of a minimal root filesystem: the static busybox and its applet links."""
    busybox = shutil.which("busybox")
    if busybox is None:
        raise RuntimeError("busybox not found: apt-get install busybox-static")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for folder in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
        with open(busybox, "rb") as fh:
            data = fh.read()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        for name, text in (("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
                           ("etc/group", "root:x:0:\n")):
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue()
