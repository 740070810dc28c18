"""Making a CA and the certificates it signs. Pure: keys and certs in, objects out.

Keys are ECDSA P-256: quick to make, and understood by Go's TLS (the docker CLI), BoringSSL
(gRPC) and OpenSSL (Python). Server certs name the addresses clients dial in their SANs,
since Go and gRPC check those and nothing else. A client cert carries its role twice: as
the subject's OU for people reading it, and as a SAN URI (`flock:role=manager`) that the
agents check before they answer a call.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROLES = ("manager", "admin")
ROLE_URI_PREFIX = "flock:role="
ORGANIZATION = "Flock"
CA_DAYS = 3650
LEAF_DAYS = 825
SKEW = datetime.timedelta(minutes=5)  # a cert made now is valid on a clock a bit behind


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str, unit: str = "") -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)]
    if unit:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(parts)


def _builder(subject: x509.Name, issuer: x509.Name, key, days: int,
             start: datetime.datetime | None) -> x509.CertificateBuilder:
    begin = (start or _now()) - SKEW
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(begin).not_valid_after(begin + datetime.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False))


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
        crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def make_ca(common_name: str = "Flock CA", days: int = CA_DAYS,
            start: datetime.datetime | None = None) -> Issued:
    """A self-signed CA. `start` moves the validity window (tests make expired ones)."""
    _check_days(days)
    key = new_key()
    name = _name(common_name)
    cert = (_builder(name, name, key, days, start)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .sign(key, hashes.SHA256()))
    return Issued(cert, key)


def parse_sans(ips: Iterable[str] = (), dns: Iterable[str] = ()) -> list[x509.GeneralName]:
    """SubjectAlternativeName entries; ValueError names an IP that does not parse."""
    names: list[x509.GeneralName] = []
    for text in ips:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(text.strip("[]"))))
        except ValueError:
            raise ValueError(f"invalid IP address {text!r}") from None
    for text in dns:
        if not text or any(c.isspace() for c in text) or not text.isascii():
            raise ValueError(f"invalid DNS name {text!r}")
        names.append(x509.DNSName(text))
    return names


def role_uri(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return ROLE_URI_PREFIX + role


def issue(ca: Issued, common_name: str, *, ips: Iterable[str] = (), dns: Iterable[str] = (),
          server: bool = False, role: str = "", days: int = LEAF_DAYS,
          start: datetime.datetime | None = None) -> Issued:
    """A leaf cert signed by `ca`: a server cert (`server`, SANs from `ips`/`dns`), a
    client cert (`role`), or both at once (a manager serves its front and calls agents
    with the same cert)."""
    _check_days(days)
    if not server and not role:
        raise ValueError("a certificate must be for a server, a client role, or both")
    sans = parse_sans(ips, dns)
    if server and not sans:
        raise ValueError("a server certificate needs at least one IP or DNS name: clients "
                         "check the address they dial against them")
    usages = []
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    if role:
        sans.append(x509.UniformResourceIdentifier(role_uri(role)))
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    key = new_key()
    builder = (_builder(_name(common_name, role), ca.cert.subject, key, days, start)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(_usage(cert_sign=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca.key.public_key()), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _check_days(days: int) -> None:
    if days < 1:
        raise ValueError(f"a certificate must be valid for at least 1 day, not {days}")


# ------------------------------------------------------------------ reading certs
def sans_of(cert: x509.Certificate) -> tuple[list[str], list[str], list[str]]:
    """(IP addresses, DNS names, URIs) the cert names in its SANs."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], [], []
    return ([str(ip) for ip in ext.get_values_for_type(x509.IPAddress)],
            ext.get_values_for_type(x509.DNSName),
            ext.get_values_for_type(x509.UniformResourceIdentifier))


def roles_of(cert: x509.Certificate) -> list[str]:
    """The Flock roles a client cert carries (from its SAN URIs)."""
    return [uri[len(ROLE_URI_PREFIX):] for uri in sans_of(cert)[2]
            if uri.startswith(ROLE_URI_PREFIX)]


def usages_of(cert: x509.Certificate) -> set[str]:
    """{"server", "client"}: what the cert's extendedKeyUsage allows (both when absent)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return {"server", "client"}
    out = set()
    if ExtendedKeyUsageOID.SERVER_AUTH in ext:
        out.add("server")
    if ExtendedKeyUsageOID.CLIENT_AUTH in ext:
        out.add("client")
    return out


def covers_host(cert: x509.Certificate, host: str) -> bool:
    """Whether a client dialling `host` accepts this cert (IP SANs for IPs, DNS SANs with
    a leftmost `*.` wildcard for names), as Go and gRPC check it."""
    ips, names, _ = sans_of(cert)
    host = host.strip("[]")
    try:
        wanted = ipaddress.ip_address(host)
    except ValueError:
        host = host.lower().rstrip(".")
        return any(_dns_match(pattern.lower().rstrip("."), host) for pattern in names)
    return any(ipaddress.ip_address(ip) == wanted for ip in ips)


def _dns_match(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == host


def not_after(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_after_utc
