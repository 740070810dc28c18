"""Certificate files on disk: docker-style folders (ca.pem, cert.pem, key.pem), written
atomically, private keys readable by their owner only.

A file is written to a temporary name in its folder with its final mode from the first
byte and then renamed over the target, so a reader never sees half a key and a key is
never, even briefly, readable by others.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from flock.certs.issue import Issued

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
CERT = "cert.pem"
KEY = "key.pem"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644


class CertError(ValueError):
    """A TLS file that cannot be used; the message names the file and the problem,
    never the key's content."""


@dataclass(frozen=True)
class TLSFiles:
    """The three files of one TLS identity: the CA to trust, our cert and its key."""

    ca: str
    cert: str
    key: str

    @classmethod
    def in_folder(cls, folder: str | os.PathLike) -> TLSFiles:
        base = Path(folder).expanduser()
        return cls(str(base / CA_CERT), str(base / CERT), str(base / KEY))


def default_cert_path() -> Path:
    """Where dockerd and the docker CLI look when no file is named: $DOCKER_CERT_PATH,
    else ~/.docker."""
    return Path(os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker").expanduser()


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_file(path: str | os.PathLike, data: bytes, mode: int = PUBLIC_MODE,
               force: bool = True) -> None:
    """Write `data` to `path` atomically with `mode`; CertError if it exists and not
    `force` (a CA or key silently replaced breaks every cert made from it)."""
    target = Path(path)
    if not force and target.exists():
        raise CertError(f"{target}: already exists (use --force to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)  # the umask does not get a say
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_identity(folder: str | os.PathLike, issued: Issued, ca_cert: x509.Certificate,
                   force: bool = False) -> TLSFiles:
    """ca.pem, cert.pem and key.pem (0600) in `folder`: what DOCKER_CERT_PATH and the
    --tlscacert/--tlscert/--tlskey flags expect."""
    files = TLSFiles.in_folder(folder)
    for path in (files.cert, files.key):
        if not force and Path(path).exists():
            raise CertError(f"{path}: already exists (use --force to replace it)")
    write_file(files.key, key_pem(issued.key), SECRET_MODE)
    write_file(files.cert, cert_pem(issued.cert))
    write_file(files.ca, cert_pem(ca_cert))
    return files


def write_ca(folder: str | os.PathLike, ca: Issued, force: bool = False) -> tuple[str, str]:
    """ca.pem and ca-key.pem (0600) in `folder`; (cert path, key path)."""
    base = Path(folder).expanduser()
    cert_path, key_path = base / CA_CERT, base / CA_KEY
    for path in (cert_path, key_path):
        if not force and path.exists():
            raise CertError(f"{path}: already exists (use --force to replace it)")
    write_file(key_path, key_pem(ca.key), SECRET_MODE)
    write_file(cert_path, cert_pem(ca.cert))
    return str(cert_path), str(key_path)
