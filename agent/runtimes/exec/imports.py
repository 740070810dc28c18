"""`docker import`: the Dockerfile-style `changes` and the extraction of a root-folder tar
(plain, gzip, bzip2 or xz) without letting any entry land outside the image folder."""

from __future__ import annotations

import bz2
import copy
import gzip
import hashlib
import json
import lzma
import os
import shlex
import tarfile
from typing import IO

from flock.agent.runtimes.exec import health
from flock.agent.runtimes.exec.errors import bad_request

CHANGE_COMMANDS = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD",
                   "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}


def empty_config() -> dict:
    return {"Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
            "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
            "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
            "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None}


def _command(args: str) -> list[str]:
    """JSON (exec) form as is; shell form runs under /bin/sh -c."""
    try:
        value = json.loads(args)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    except json.JSONDecodeError:
        pass
    return ["/bin/sh", "-c", args]


def _pairs(args: str, instruction: str) -> list[tuple[str, str]]:
    """`K=V K2="a b"`, or the legacy `K V...` form."""
    words = shlex.split(args)
    if not words:
        raise bad_request(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = args.strip().partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise bad_request(f"{instruction} names can not be blank: {word}")
        pairs.append((key, value))
    return pairs


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Apply `docker import -c` instructions to an image config."""
    for change in changes:
        instruction, _, args = change.strip().partition(" ")
        upper = instruction.upper()
        args = args.strip()
        if upper not in CHANGE_COMMANDS:
            raise bad_request(f"{instruction} is not a valid change command")
        if upper in ("CMD", "ENTRYPOINT"):
            config["Cmd" if upper == "CMD" else "Entrypoint"] = _command(args)
        elif upper == "ENV":
            env = [e for e in (config.get("Env") or [])]
            for key, value in _pairs(args, "ENV"):
                env = [e for e in env if e.split("=", 1)[0] != key] + [f"{key}={value}"]
            config["Env"] = env
        elif upper == "LABEL":
            config["Labels"] = {**(config.get("Labels") or {}), **dict(_pairs(args, "LABEL"))}
        elif upper == "WORKDIR":
            config["WorkingDir"] = os.path.join(config.get("WorkingDir") or "/", args)
        elif upper == "USER":
            config["User"] = args
        elif upper == "STOPSIGNAL":
            config["StopSignal"] = args
        elif upper == "HEALTHCHECK":
            config["Healthcheck"] = health.from_instruction(args)
        elif upper == "EXPOSE":
            ports = config.get("ExposedPorts") or {}
            for port in args.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            config["ExposedPorts"] = ports
        elif upper == "VOLUME":
            paths = _command(args) if args.startswith("[") else args.split()
            config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
        else:
            config["OnBuild"] = (config.get("OnBuild") or []) + [args]
    return config


class _HashingReader:
    """Hashes the uncompressed tar stream as tarfile reads it: the layer's diff id."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _decompressed(path: str) -> IO[bytes]:
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic[:3] == b"BZh":
        return bz2.open(path, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb")
    return open(path, "rb")


def _resolve(root: str, parts: list[str], depth: int = 0) -> list[str]:
    """Follow symlinks as if `root` were `/`: the real path of `parts` inside root."""
    current: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = os.path.join(root, *current, part)
        if os.path.islink(candidate) and depth < 40:
            target = os.readlink(candidate)
            base = [] if target.startswith("/") else current
            current = _resolve(root, base + target.split("/"), depth + 1)
        else:
            current.append(part)
    return current


def _confine(member: tarfile.TarInfo, root: str) -> tarfile.TarInfo | None:
    """Rewrite an entry so it lands inside root even through the symlinks extracted
    before it; None skips entries that name nothing."""
    parts = [p for p in member.name.split("/") if p not in ("", ".")]
    if not parts or parts[-1] == "..":
        return None
    name = "/".join(_resolve(root, parts[:-1]) + [parts[-1]])
    changes: dict = {"name": name}
    if member.islnk():
        link = [p for p in member.linkname.split("/") if p not in ("", ".")]
        changes["linkname"] = "/".join(_resolve(root, link[:-1]) + link[-1:])
    if hasattr(member, "replace"):
        return member.replace(**changes, deep=False)
    safe = copy.copy(member)   # Python < 3.11.4 (Debian 12's 3.11.2): no TarInfo.replace
    for key, value in changes.items():
        setattr(safe, key, value)
    return safe


# Entries are confined above; extraction filters exist from Python 3.11.4 on only.
_TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def extract_rootfs(tar_path: str, dest: str) -> tuple[str, int]:
    """Extract into dest; returns ("sha256:<diff id>", size in bytes)."""
    os.makedirs(dest, exist_ok=True)
    root = os.path.realpath(dest)
    size = 0
    with _decompressed(tar_path) as raw:
        reader = _HashingReader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    safe = _confine(member, root)
                    if safe is None:
                        continue
                    size += safe.size
                    tar.extract(safe, root, set_attrs=not safe.issym(), **_TRUSTED)
        except (tarfile.TarError, EOFError, OSError, lzma.LZMAError) as exc:
            raise bad_request(f"Error processing tar file: {exc}") from None
        reader.drain()
    return "sha256:" + reader.sha.hexdigest(), size
