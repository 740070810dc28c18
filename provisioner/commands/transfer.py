"""`flock machine export NAME` / `import FILE`: hand a machine to a colleague.

An export is a tar.gz of the machine's folder (config.json, SSH key pair, TLS files);
every path in the record is relative to that folder, so the machine works from any
store. Cloud secrets (secrets.json) stay out unless --with-secrets: the receiver uses
their own credentials. Import refuses an archive that would write outside its folder,
a name already taken, and TLS files that do not belong together.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import stat
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

from flock.certs.check import check_key_matches, check_signed_by, read_cert, read_key
from flock.certs.files import SECRET_MODE, CertError, write_file
from flock.provisioner.commands import err, out
from flock.provisioner.errors import InvalidHostname, InvalidName, MachineError, MachineExists
from flock.provisioner.host import Host, check_name
from flock.provisioner.machine_config import ConfigError, from_any
from flock.provisioner.store import CONFIG, SECRETS, Store

SECRET_NAMES = {SECRETS, "id_rsa"}


def _is_secret(name: str) -> bool:
    return name in SECRET_NAMES or name.endswith("key.pem")


def export_bytes(store: Store, name: str, with_secrets: bool) -> tuple[bytes, bool]:
    """The archive, and whether a secrets.json was left out."""
    store.load(name)   # MachineNotFound / a broken config stop here
    folder = store.machine_dir(name)
    buffer = io.BytesIO()
    left_out = False
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if rel.name.startswith("."):
                continue   # a write in progress elsewhere (.NAME.PID.tmp)
            if rel.as_posix() == SECRETS and not with_secrets:
                left_out = True
                continue
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            tar.add(path, arcname=f"{name}/{rel.as_posix()}", recursive=False)
    return buffer.getvalue(), left_out


def cmd_export(args: argparse.Namespace, store: Store) -> int:
    if not args.output and sys.stdout.isatty():
        raise MachineError("refusing to write a binary archive to a terminal: redirect it "
                           f"(flock machine export {args.name} > {args.name}.tar.gz) or pass "
                           "-o FILE")
    data, left_out = export_bytes(store, args.name, args.with_secrets)
    if args.output:
        write_file(args.output, data, SECRET_MODE)   # holds the machine's keys
        out(f"Exported {args.name} to {args.output}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    if left_out:
        err(f"Note: {SECRETS} (the provider's credentials) was left out; the receiver needs "
            "their own, or export again with --with-secrets")
    return 0


def _members(tar: tarfile.TarFile, source: str) -> tuple[str, list[tarfile.TarInfo]]:
    """The archive's one top folder and its members, after checking every member is a
    plain file or folder inside it."""
    members = tar.getmembers()
    tops = {PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts}
    if len(tops) != 1:
        raise MachineError(f"{source}: not a flock machine export (expected one machine "
                           "folder in the archive)")
    [top] = tops
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise MachineError(f"{source}: refusing member {member.name!r}, which points "
                               "outside the machine folder")
        if not (member.isfile() or member.isdir()):
            raise MachineError(f"{source}: refusing member {member.name!r}: only plain files "
                               "and folders belong in a machine export")
    return top, members


def _extract(tar: tarfile.TarFile, members: list[tarfile.TarInfo], dest: Path) -> None:
    """Write the (checked) members under `dest` as the person importing owns them, with
    no set-ID bits and no write for others: what tarfile's "data" filter does, which
    Debian 12's Python 3.11.2 lacks."""
    for member in members:
        path = dest / member.name
        if member.isdir():
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None  # a plain file (checked by _members)
        with source, open(path, "wb") as out:
            shutil.copyfileobj(source, out)
        os.chmod(path, member.mode & 0o755)


def _check_tls(folder: Path, host: Host, source: str) -> None:
    """The archive's CA, client cert and key must be there and belong together: they are
    what DOCKER_CERT_PATH will point at."""
    auth = host.options.auth
    paths = {k: folder / v for k, v in (("ca", auth.ca_cert), ("cert", auth.client_cert),
                                        ("key", auth.client_key))}
    try:
        for path in paths.values():
            if not path.resolve().is_relative_to(folder.resolve()):
                raise MachineError(f"{source}: {path.name} lies outside the machine folder")
        _, ca = read_cert(str(paths["ca"]), "CA certificate")
        _, cert = read_cert(str(paths["cert"]), "client certificate")
        _, key = read_key(str(paths["key"]), "client key")
        check_signed_by(str(paths["cert"]), cert, str(paths["ca"]), ca)
        check_key_matches(str(paths["key"]), key, str(paths["cert"]), cert)
    except CertError as exc:
        raise MachineError(f"{source}: the machine's TLS files cannot be used ({exc}); export "
                           "it again from a working store") from None


def import_archive(store: Store, data: bytes, source: str, new_name: str = "") -> Host:
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise MachineError(f"{source}: not a flock machine export (a .tar.gz from `flock "
                           f"machine export`): {exc}") from None
    with tar:
        top, members = _members(tar, source)
        try:
            name = check_name(new_name or top)
        except InvalidName:
            raise InvalidHostname("importing") from None
        if store.exists(name):
            raise MachineExists(name)
        store.machines_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=store.machines_dir))
        try:
            _extract(tar, members, staging)
            folder = staging / top
            try:
                host, _ = from_any(json.loads((folder / CONFIG).read_text()), top)
                host.name = name
            except (OSError, ValueError, KeyError, TypeError, ConfigError) as exc:
                raise MachineError(f"{source}: the archive's {CONFIG} cannot be read "
                                   f"({exc})") from None
            _check_tls(folder, host, source)
            # paths are written anew for this store (to_config rebuilds every one of them)
            write_file(folder / CONFIG, store.config_bytes(host))
            for path in folder.rglob("*"):
                if path.is_file() and _is_secret(path.name):
                    os.chmod(path, SECRET_MODE)
                elif path.is_file():
                    os.chmod(path, stat.S_IMODE(path.stat().st_mode) & 0o755)
            try:
                os.rename(folder, store.machine_dir(name))
            except OSError:
                if store.exists(name):
                    raise MachineExists(name) from None
                shutil.rmtree(store.machine_dir(name), ignore_errors=True)
                os.rename(folder, store.machine_dir(name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return host


def cmd_import(args: argparse.Namespace, store: Store) -> int:
    if args.file == "-":
        data, source = sys.stdin.buffer.read(), "stdin"
    else:
        try:
            data, source = Path(args.file).read_bytes(), args.file
        except OSError as exc:
            raise MachineError(f"{args.file}: cannot read the archive ({exc.strerror})") \
                from None
    host = import_archive(store, data, source, args.name or "")
    out(f"Imported {host.name}")
    return 0
