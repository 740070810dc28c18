"""Where a runtime's Docker Engine API answers, named as DOCKER_HOST names it.

An agent may front an engine on a unix socket or one that listens only on TCP, with TLS
and client certs as Docker Machine's engines do (`tcp://IP:2376`, `--tlsverify`). The
agent talks to its engine three ways (its own calls, the keep-alive DockerCall client,
the raw bridge for streams and hijacked connections); one Endpoint serves all three, so
none of them knows or cares which transport is underneath.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import urllib.parse
from dataclasses import dataclass, field

import aiohttp

from flock.docker_compat.tls_stream import TLSStream

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
DEFAULT_TCP_PORT = 2375  # docker/cli opts/hosts.go: DefaultHTTPPort for tcp:// without one
_HTTPS_REFUSAL = b"Client sent an HTTP request to an HTTPS server"  # Go's net/http


@dataclass(frozen=True)
class Endpoint:
    """A unix socket (`path`) or `host`:`port`, with `tls` when the engine speaks TLS."""

    url: str
    path: str = ""
    host: str = ""
    port: int = 0
    tls: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @classmethod
    def unix(cls, path: str) -> Endpoint:
        return cls(f"unix://{path}", path=path)

    def __str__(self) -> str:
        return f"{self.url} (TLS)" if self.tls is not None else self.url

    @property
    def base_url(self) -> str:
        """What request URLs start with: http://docker on a socket, where the host part
        only fills the Host header; the engine's own address on TCP, so that TLS checks
        its certificate against the name it was given."""
        if self.path:
            return "http://docker"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls is not None else 'http'}://{host}:{self.port}"

    def connector(self, limit: int = 100) -> aiohttp.BaseConnector:
        """An aiohttp connector for requests to `base_url`."""
        if self.path:
            return aiohttp.UnixConnector(path=self.path, limit=limit)
        return aiohttp.TCPConnector(limit=limit, ssl=self.tls or False)

    async def open_stream(self, protocol_factory) -> asyncio.BaseTransport:
        """A connection for the raw bridge: an asyncio transport with `protocol_factory`'s
        protocol for unix and plain TCP; for TLS a TLSStream (see docker_compat)."""
        loop = asyncio.get_running_loop()
        if self.path:
            transport, _ = await loop.create_unix_connection(protocol_factory, self.path)
        elif self.tls is None:
            transport, _ = await loop.create_connection(protocol_factory, self.host, self.port)
        else:
            return await TLSStream.open(self.host, self.port, self.tls, protocol_factory)
        return transport

    def why_silent(self, timeout: float) -> str:
        """'' when the engine answers GET /_ping with 200, else why not, in words that say
        what to change (blocking: for start-up checks)."""
        try:
            head = self._ping(timeout)
        except ssl.SSLCertVerificationError as exc:
            return (f"its TLS certificate is not trusted: {exc.verify_message or exc.reason} "
                    "(check ca.pem in the cert path)")
        except (ssl.SSLEOFError, ConnectionResetError) as exc:
            if self.tls is not None:  # TLS 1.3: the refusal of our cert may come as a close
                return _CLOSED_AFTER_HANDSHAKE
            return exc.strerror or str(exc)
        except ssl.SSLError as exc:
            return tls_failure(exc)
        except OSError as exc:
            return exc.strerror or str(exc) or type(exc).__name__
        if head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
            if b"\r\nserver: flock/" in head.lower():
                return ("it is a Flock manager, not a Docker Engine (is DOCKER_HOST the "
                        "manager's address?)")
            return ""
        if _HTTPS_REFUSAL in head:
            return ("it speaks TLS: add --docker-tlsverify (with --docker-cert-path, or "
                    "DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)")
        return f"unexpected answer to /_ping: {head[:60]!r}"

    def _ping(self, timeout: float) -> bytes:
        if self.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(self.path)
        else:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
        with sock:
            conn = self.tls.wrap_socket(sock, server_hostname=self.host) if self.tls else sock
            conn.sendall(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
            return _read_some(conn, 512)


def _read_some(conn: socket.socket, limit: int) -> bytes:
    data = b""
    while len(data) < limit and (piece := conn.recv(limit - len(data))):
        data += piece
    return data


_REFUSED_CERT = ("cert.pem and key.pem in the cert path must be signed by the CA the "
                 "engine trusts")
_CLOSED_AFTER_HANDSHAKE = ("it closed the TLS connection without answering: it does not "
                           f"accept this agent's client certificate ({_REFUSED_CERT})")


def tls_failure(exc: ssl.SSLError) -> str:
    """A TLS failure in words: the engine refused our client cert, or speaks no TLS."""
    reason = (exc.reason or str(exc)).lower()
    if "wrong_version_number" in reason or "wrong version number" in reason:
        return ("it does not speak TLS (a plain tcp:// engine): drop --docker-tlsverify "
                "(and DOCKER_TLS_VERIFY)")
    if any(word in reason for word in ("certificate", "unknown_ca", "unknown ca")):
        return f"it refused this agent's client certificate ({exc.reason}): {_REFUSED_CERT}"
    return f"TLS handshake failed: {exc.reason or exc}"


def is_unix_socket(text: str) -> bool:
    """Whether a DOCKER_HOST value names a unix socket (as parse_docker_host reads it)."""
    return text.strip().startswith(("unix://", "/"))


def parse_docker_host(text: str, tls: ssl.SSLContext | None = None) -> Endpoint:
    """The Endpoint a DOCKER_HOST value names: unix:///path (or /path), tcp://HOST[:PORT]
    or HOST:PORT (docker/cli opts/hosts.go). ValueError says what is wrong."""
    value = text.strip()
    if value.startswith("/"):
        value = "unix://" + value
    elif "://" not in value and value:
        value = "tcp://" + value
    scheme, _, rest = value.partition("://")
    if scheme == "unix":
        return _unix(text, rest, tls)
    if scheme == "tcp":
        return _tcp(text, value, tls)
    raise ValueError(f"unsupported --docker-host {text!r}: expected unix:///path/to/docker.sock "
                     "or tcp://HOST:PORT")


def _unix(text: str, path: str, tls: ssl.SSLContext | None) -> Endpoint:
    if not path:
        raise ValueError(f"unsupported --docker-host {text!r}: empty socket path")
    if tls is not None:
        raise ValueError(f"--docker-host {text!r} is a unix socket: TLS (--docker-tlsverify) "
                         "is for tcp:// engines")
    return Endpoint.unix(path)


def _tcp(text: str, value: str, tls: ssl.SSLContext | None) -> Endpoint:
    parts = urllib.parse.urlsplit(value)
    try:
        port = parts.port or DEFAULT_TCP_PORT
    except ValueError:
        raise ValueError(f"invalid --docker-host {text!r}: bad port") from None
    host = parts.hostname or ""
    if not host or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"invalid --docker-host {text!r}: expected tcp://HOST:PORT")
    shown = f"[{host}]" if ":" in host else host
    return Endpoint(f"tcp://{shown}:{port}", host=host, port=port, tls=tls)


def as_endpoint(target: Endpoint | str) -> Endpoint:
    """An Endpoint from either an Endpoint or a unix socket path (the exec and hollow
    runtimes, and tests, name their socket by path)."""
    return target if isinstance(target, Endpoint) else Endpoint.unix(target)
