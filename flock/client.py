"""The connection of the `flock` CLI to a manager's ClusterService.

The manager serves it on its Docker API listeners (manager/api/shared_port.py), so the
docker CLI's own settings reach it: `DOCKER_HOST` (tcp://HOST:PORT or unix:///PATH),
`DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` (ca.pem, cert.pem, key.pem). `-H` and
`FLOCK_HOST` name another address, such as `flock manage --grpc-addr`'s, and win over
`DOCKER_HOST`; `--tlsverify` (or `FLOCK_TLS_VERIFY`) with `--tlscacert/--tlscert/--tlskey`
turns on mutual TLS as DOCKER_TLS_VERIFY does.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

import grpc

from flock.certs.files import default_cert_path
from flock.protos import cluster_pb2_grpc

# What `flock manage` listens on without -H (ManagerConfig.hosts), as docker's default
# is its engine's.
DEFAULT_HOST = "tcp://127.0.0.1:2375"
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class ClientError(Exception):
    """A flag or file the client cannot use; the message names it."""


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-H", "--host", default=None, metavar="HOST",
                        help="the manager: tcp://HOST:PORT, HOST:PORT or unix:///PATH "
                             f"(default $FLOCK_HOST, $DOCKER_HOST or {DEFAULT_HOST})")
    parser.add_argument("--tlsverify", action="store_true",
                        help="use TLS and verify the manager (default $FLOCK_TLS_VERIFY or "
                             "$DOCKER_TLS_VERIFY)")
    parser.add_argument("--tlscacert", default=None, metavar="FILE", help="CA of the manager")
    parser.add_argument("--tlscert", default=None, metavar="FILE", help="client cert")
    parser.add_argument("--tlskey", default=None, metavar="FILE", help="client key")


def command_parents() -> list[argparse.ArgumentParser]:
    """The parent parsers every `flock` cluster command takes (`parents=`): the connection
    flags and `--format`, so each command offers them with the same words."""
    conn = argparse.ArgumentParser(add_help=False)
    add_connection_flags(conn)
    fmt = argparse.ArgumentParser(add_help=False)
    fmt.add_argument("--format", choices=["table", "json"], default="table",
                     help="table for people (default), json for scripts")
    return [conn, fmt]


@dataclass(frozen=True)
class Target:
    """Where the CLI dials, and what said so (for the messages when it fails)."""

    grpc: str  # what grpc dials: HOST:PORT or unix:/PATH
    shown: str  # as given
    source: str  # -H, FLOCK_HOST, DOCKER_HOST or "the default"

    @property
    def is_unix(self) -> bool:
        return self.grpc.startswith("unix:")


def target(host: str | None) -> Target:
    """The address from `-H`, `FLOCK_HOST`, `DOCKER_HOST` or the default, in that order."""
    for value, source in ((host, "-H"), (os.environ.get("FLOCK_HOST"), "FLOCK_HOST"),
                          (os.environ.get("DOCKER_HOST"), "DOCKER_HOST"),
                          (DEFAULT_HOST, "the default")):
        if value and value.strip():
            return Target(_dialable(value.strip(), source), value.strip(), source)
    raise AssertionError("the default is never empty")


def _dialable(value: str, source: str) -> str:
    if value.startswith("unix://"):
        path = value[len("unix://"):]
        if not path.startswith("/"):
            raise ClientError(f"invalid host {value!r} ({source}): expected unix:///PATH")
        return f"unix:{path}"
    address = value.removeprefix("tcp://")
    _, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address or "/" in address:
        raise ClientError(f"invalid host {value!r} ({source}): expected tcp://HOST:PORT, "
                          "HOST:PORT or unix:///PATH")
    return address


def wants_tls(args: argparse.Namespace) -> bool:
    """--tlsverify, or either variable set to anything (the docker CLI's rule)."""
    return bool(args.tlsverify or os.environ.get("FLOCK_TLS_VERIFY")
                or os.environ.get("DOCKER_TLS_VERIFY"))


def _read(path: str | None, name: str) -> bytes:
    file = Path(path) if path else default_cert_path() / name
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {file}: {exc.strerror or exc}") from None


def tls_files(args: argparse.Namespace) -> tuple[bytes, bytes, bytes]:
    """The CA, client key and client cert, from the flags or $DOCKER_CERT_PATH."""
    return (_read(args.tlscacert, "ca.pem"), _read(args.tlskey, "key.pem"),
            _read(args.tlscert, "cert.pem"))


def channel(args: argparse.Namespace) -> grpc.Channel:
    addr = target(args.host).grpc
    if wants_tls(args):
        ca, key, cert = tls_files(args)
        credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key,
                                                   certificate_chain=cert)
        return grpc.secure_channel(addr, credentials)
    return grpc.insecure_channel(addr)


def stub(args: argparse.Namespace) -> cluster_pb2_grpc.ClusterServiceStub:
    return cluster_pb2_grpc.ClusterServiceStub(channel(args))


def parse_size(text: str) -> int:
    """`-m` sizes as docker takes them: 512m, 1g, 1.5GiB, 1048576."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ClientError(f"invalid size {text!r}: expected a number with b, k, m, g or t")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
