"""TLS certificates for every Flock link: the CA, server and client certs, loading and
checking them at start, and the contexts the Docker API front and the agent link use.
Shared by the manager, the agent and `flock machine`; `flock certs` is its command."""

from flock.certs.check import (
    EXPIRY_WARNING_DAYS,
    Identity,
    expiry_warnings,
    load_ca,
    load_identity,
)
from flock.certs.files import (
    CertError,
    TLSFiles,
    default_cert_path,
    write_ca,
    write_file,
    write_identity,
)
from flock.certs.issue import ROLES, Issued, covers_host, issue, make_ca, roles_of, sans_of

# certs.tls needs gRPC, which takes a third of a second to load: its names are loaded
# on first use, so that `flock machine` and `flock certs` start without it.
_TLS_NAMES = frozenset({"RoleRequired", "client_ssl_context", "engine_client_context",
                        "grpc_channel_credentials",
                        "grpc_server_credentials", "server_ssl_context"})


def __getattr__(name: str) -> object:
    if name in _TLS_NAMES:
        from flock.certs import tls

        return getattr(tls, name)
    raise AttributeError(f"module 'certs' has no attribute {name!r}")


__all__ = [
    "EXPIRY_WARNING_DAYS", "ROLES", "CertError", "Identity", "Issued", "RoleRequired",
    "TLSFiles", "client_ssl_context", "covers_host", "default_cert_path",
    "engine_client_context", "expiry_warnings",
    "grpc_channel_credentials", "grpc_server_credentials", "issue", "load_ca",
    "load_identity", "make_ca", "roles_of", "sans_of", "server_ssl_context", "write_ca",
    "write_file", "write_identity",
]
