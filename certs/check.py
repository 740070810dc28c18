"""Loading a TLS identity and checking it at start, so a bad file stops the program with
one sentence naming the file and the problem instead of a handshake failure later.

Checked: every file exists and parses, the cert is within its validity window, it is
signed by the CA, the key is the cert's, and the cert is fit for its use (a server cert
that names the address clients dial; a client cert with the role the other side asks
for). Messages name files, never their content.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from flock.certs.files import CertError, TLSFiles
from flock.certs.issue import Issued, covers_host, not_after, roles_of, sans_of, usages_of

EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class Identity:
    """A checked TLS identity, PEM bytes ready for ssl and gRPC. The key stays out of
    repr() so that logging an Identity never prints it."""

    files: TLSFiles
    cert: x509.Certificate
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes = field(repr=False)

    @property
    def expires(self) -> datetime.datetime:
        return not_after(self.cert)


def _read(path: str, what: str) -> bytes:
    if not path:
        raise CertError(f"no {what} file given")
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise CertError(f"{path}: no such file (the {what})") from None
    except IsADirectoryError:
        raise CertError(f"{path}: is a folder, not the {what} file") from None
    except OSError as exc:
        raise CertError(f"{path}: cannot read the {what}: {exc.strerror}") from None


def read_cert(path: str, what: str = "certificate") -> tuple[bytes, x509.Certificate]:
    data = _read(path, what)
    try:
        return data, x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CertError(f"{path}: not a PEM certificate (the {what})") from None


def read_key(path: str, what: str = "private key") -> tuple[bytes, object]:
    data = _read(path, what)
    try:
        return data, serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise CertError(f"{path}: the {what} is encrypted with a passphrase; Flock needs "
                        "it unencrypted (keep the file mode 0600)") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertError(f"{path}: not a PEM private key (the {what})") from None


def _date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def check_validity(path: str, cert: x509.Certificate, what: str,
                   now: datetime.datetime | None = None) -> None:
    now = now or datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        raise CertError(f"{path}: the {what} expired on {_date(cert.not_valid_after_utc)}; "
                        "make a new one (flock certs)")
    if cert.not_valid_before_utc > now:
        raise CertError(f"{path}: the {what} is not valid before "
                        f"{_date(cert.not_valid_before_utc)}; check this machine's clock")


def _public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def check_key_matches(key_path: str, key, cert_path: str, cert: x509.Certificate) -> None:
    cert_public = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if _public(key) != cert_public:
        raise CertError(f"{key_path}: the private key does not match the certificate "
                        f"{cert_path}")


def check_signed_by(cert_path: str, cert: x509.Certificate, ca_path: str,
                    ca: x509.Certificate) -> None:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertError(f"{cert_path}: not signed by the CA in {ca_path} (it was issued "
                        f"by {cert.issuer.rfc4514_string()})") from None


def describe_sans(cert: x509.Certificate) -> str:
    ips, names, _ = sans_of(cert)
    return ", ".join([*ips, *names]) or "no address at all"


def load_identity(files: TLSFiles, *, hosts: Sequence[str] = (), role: str = "",
                  server: bool = False, need_ca: bool = True,
                  now: datetime.datetime | None = None) -> Identity:
    """Read and check `files`. `server`: the cert must be a server cert covering every
    one of `hosts`; `role`: it must also be a client cert with that role. Without
    `need_ca` the CA file is not read (`--tls` without client verification)."""
    ca_pem, ca = b"", None
    if need_ca:
        ca_pem, ca = read_cert(files.ca, "CA certificate")
        check_validity(files.ca, ca, "CA certificate", now)
        _check_is_ca(files.ca, ca)
    cert_pem, cert = read_cert(files.cert, "certificate")
    key_pem, key = read_key(files.key)
    check_validity(files.cert, cert, "certificate", now)
    if ca is not None:
        check_signed_by(files.cert, cert, files.ca, ca)
    check_key_matches(files.key, key, files.cert, cert)
    usages = usages_of(cert)
    if server:
        if "server" not in usages:
            raise CertError(f"{files.cert}: not a server certificate (its extendedKeyUsage "
                            "lacks serverAuth)")
        for host in hosts:
            if not covers_host(cert, host):
                raise CertError(f"{files.cert}: the certificate is for {describe_sans(cert)}, "
                                f"not for {host}: clients dialling {host} will refuse it")
    if role and ("client" not in usages or role not in roles_of(cert)):
        raise CertError(f"{files.cert}: not a client certificate with the {role} role "
                        f"(make one with `flock certs client --role {role}` or "
                        f"`flock certs server --role {role}`)")
    return Identity(files, cert, ca_pem, cert_pem, key_pem)


def _check_is_ca(path: str, ca: x509.Certificate) -> None:
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CertError(f"{path}: not a CA certificate (no basicConstraints CA:TRUE); "
                        "pass the CA's ca.pem")


def load_ca(cert_path: str, key_path: str) -> Issued:
    """The CA that signs new certs: its cert and key, checked to belong together."""
    _, cert = read_cert(cert_path, "CA certificate")
    _, key = read_key(key_path, "CA key")
    _check_is_ca(cert_path, cert)
    check_validity(cert_path, cert, "CA certificate")
    check_key_matches(key_path, key, cert_path, cert)
    return Issued(cert, key)


def expiry_warnings(identities: dict[str, Identity], days: int = EXPIRY_WARNING_DAYS,
                    now: datetime.datetime | None = None) -> list[str]:
    """One warning per identity (by label) whose cert or CA expires within `days`."""
    now = now or datetime.datetime.now(datetime.UTC)
    out = []
    for label, ident in identities.items():
        certs = [(ident.files.cert, ident.cert)]
        if ident.ca_pem:
            certs.append((ident.files.ca, x509.load_pem_x509_certificate(ident.ca_pem)))
        for path, cert in certs:
            left = cert.not_valid_after_utc - now
            if left < datetime.timedelta(0):
                out.append(f"{label}: {path} expired on {_date(cert.not_valid_after_utc)}")
            elif left < datetime.timedelta(days=days):
                out.append(f"{label}: {path} expires in {left.days} days "
                           f"({_date(cert.not_valid_after_utc)})")
    return out
