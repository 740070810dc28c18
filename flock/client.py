"""The connection of the `flock` CLI to a manager's ClusterService.

Like the docker CLI: `-H`/`FLOCK_HOST` names the address (`flock manage --grpc-addr`),
and `--tlsverify` with `--tlscacert/--tlscert/--tlskey` (default files in
$DOCKER_CERT_PATH or ~/.docker) turns on mutual TLS.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import grpc

from flock.certs.files import default_cert_path
from flock.protos import cluster_pb2_grpc

DEFAULT_HOST = "127.0.0.1:2377"
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class ClientError(Exception):
    """A flag or file the client cannot use; the message names it."""


def add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-H", "--host", default=None, metavar="HOST:PORT",
                        help=f"the manager's ClusterService (default $FLOCK_HOST or "
                             f"{DEFAULT_HOST})")
    parser.add_argument("--tlsverify", action="store_true",
                        help="use TLS and verify the manager (default $FLOCK_TLS_VERIFY)")
    parser.add_argument("--tlscacert", default=None, metavar="FILE", help="CA of the manager")
    parser.add_argument("--tlscert", default=None, metavar="FILE", help="client cert")
    parser.add_argument("--tlskey", default=None, metavar="FILE", help="client key")


def target(host: str | None) -> str:
    """HOST:PORT from `-H`, `FLOCK_HOST` or the default; tcp:// is accepted."""
    value = (host or os.environ.get("FLOCK_HOST") or DEFAULT_HOST).strip()
    value = value.removeprefix("tcp://")
    _, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or "://" in value:
        raise ClientError(f"invalid host {value!r}: expected HOST:PORT or tcp://HOST:PORT")
    return value


def _read(path: str | None, name: str) -> bytes:
    file = Path(path) if path else default_cert_path() / name
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {file}: {exc.strerror or exc}") from None


def channel(args: argparse.Namespace) -> grpc.Channel:
    addr = target(args.host)
    if args.tlsverify or os.environ.get("FLOCK_TLS_VERIFY"):
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read(args.tlscacert, "ca.pem"),
            private_key=_read(args.tlskey, "key.pem"),
            certificate_chain=_read(args.tlscert, "cert.pem"))
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
