"""Checked identities turned into what the servers and clients take: an ssl.SSLContext
for the Docker API front, gRPC credentials for the agent link, and the agent's check that
the caller holds a client cert with the manager role.
"""

from __future__ import annotations

import functools
import inspect
import ssl
from pathlib import Path

import grpc
from cryptography import x509

from flock.certs.check import Identity, load_identity, read_cert
from flock.certs.files import TLSFiles
from flock.certs.issue import roles_of


def server_ssl_context(ident: Identity, verify: bool) -> ssl.SSLContext:
    """The HTTP front's context: like dockerd, `verify` (--tlsverify) demands a client
    cert signed by the CA; without it (--tls) the link is encrypted and anyone may call."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(ident.files.cert, ident.files.key)
    if verify:
        ctx.load_verify_locations(cadata=ident.ca_pem.decode())
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_ssl_context(ident: Identity) -> ssl.SSLContext:
    """For calling another Flock manager's HTTP front (a replica forwarding a write to
    the primary): trust the CA, present our own cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ident.ca_pem.decode())
    ctx.load_cert_chain(ident.files.cert, ident.files.key)
    return ctx


def engine_client_context(cert_path: str | Path) -> ssl.SSLContext:
    """The docker CLI's --tlsverify for a Docker Engine: trust ca.pem in `cert_path`,
    present cert.pem/key.pem from there (left out when both are absent, as the CLI does).
    Unlike our own links, the client cert need not come from the engine's CA: Docker
    Machine's does, other setups may not. CertError names a file that cannot work."""
    files = TLSFiles.in_folder(cert_path)
    ca_pem, _ = read_cert(files.ca, "CA certificate")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem.decode())
    if Path(files.cert).exists() or Path(files.key).exists():
        ident = load_identity(files, need_ca=False)
        ctx.load_cert_chain(ident.files.cert, ident.files.key)
    return ctx


def grpc_server_credentials(ident: Identity) -> grpc.ServerCredentials:
    """Mutual TLS: a caller without a cert of our CA does not finish the handshake."""
    return grpc.ssl_server_credentials([(ident.key_pem, ident.cert_pem)],
                                       root_certificates=ident.ca_pem,
                                       require_client_auth=True)


def grpc_channel_credentials(ident: Identity) -> grpc.ChannelCredentials:
    """The manager's side: trust only our CA (gRPC also checks that the agent's cert
    names the address dialled), and show our client cert."""
    return grpc.ssl_channel_credentials(root_certificates=ident.ca_pem,
                                        private_key=ident.key_pem,
                                        certificate_chain=ident.cert_pem)


@functools.lru_cache(maxsize=64)
def _roles(pem: bytes) -> tuple[str, ...]:
    try:
        return tuple(roles_of(x509.load_pem_x509_certificate(pem)))
    except ValueError:
        return ()


def peer_roles(context) -> tuple[str, ...]:
    """The Flock roles in the verified client cert of a gRPC call (none for plaintext)."""
    pems = context.auth_context().get("x509_pem_cert") or []
    return _roles(pems[0]) if pems else ()


class RoleRequired(grpc.aio.ServerInterceptor):
    """Answer only callers whose client cert carries `role`. The handshake already
    proved the cert is our CA's; this keeps an admin's docker client cert (same CA) from
    driving agents directly."""

    def __init__(self, role: str) -> None:
        self.role = role

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                return handler._replace(**{kind: self._guard(behaviour)})
        return handler

    def _guard(self, behaviour):
        role = self.role

        async def deny(context) -> None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED,
                                f"this agent answers only clients with the {role} role")

        if inspect.isasyncgenfunction(behaviour):
            async def stream(request, context):
                if role not in peer_roles(context):
                    await deny(context)
                async for item in behaviour(request, context):
                    yield item
            return stream

        async def unary(request, context):
            if role not in peer_roles(context):
                await deny(context)
            return await behaviour(request, context)
        return unary
