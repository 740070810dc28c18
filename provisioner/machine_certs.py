"""The TLS material of a machine store: one CA and one client cert for the whole store,
and one server cert per machine naming the addresses clients dial.

Docker Machine users' most common failure is an x509 error after a machine got a new IP;
`server_cert_covers` lets start/restart (and `ls`) notice that before anything dials the
machine, and `write_server_cert` makes the replacement.

The CA and client cert are made once, under a lock (threads of a parallel create and
other `flock machine` processes may ask at the same moment): a CA replaced under a
running fleet would orphan every cert made from it.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from flock.certs.check import load_ca, read_cert
from flock.certs.files import (
    PUBLIC_MODE,
    SECRET_MODE,
    CertError,
    cert_pem,
    key_pem,
    write_file,
)
from flock.certs.issue import covers_host, issue, make_ca
from flock.provisioner.errors import MachineError
from flock.provisioner.host import Host
from flock.provisioner.store import Store

CLIENT_NAME = "flock-machine-client"
LOCK_FILE = ".lock"
_thread_lock = threading.Lock()


@contextlib.contextmanager
def _store_lock(store: Store) -> Iterator[None]:
    """One writer of the store's certs/ at a time: threads here, processes by flock(2)."""
    store.certs_dir.mkdir(parents=True, exist_ok=True)
    with _thread_lock:
        fd = os.open(store.certs_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def ensure_ca_and_client(store: Store) -> None:
    """`<store>/certs/{ca.pem,ca-key.pem,cert.pem,key.pem}`: made on first use, kept after.

    The client cert has the role "admin" (a docker client of the machines and of a
    --swarm-master's manager)."""
    folder = store.certs_dir
    with _store_lock(store):
        ca_path, ca_key_path = store.ca_cert_path, store.ca_key_path
        if ca_path.exists() != ca_key_path.exists():
            missing = ca_key_path if ca_path.exists() else ca_path
            raise MachineError(f"{missing} is missing but its pair is there: restore it, or "
                               f"move {folder} away to start a new CA (every machine will "
                               "then need `flock machine regenerate-certs`)")
        if not ca_path.exists():
            ca = make_ca("Flock machine CA")
            write_file(ca_key_path, key_pem(ca.key), SECRET_MODE)
            write_file(ca_path, cert_pem(ca.cert), PUBLIC_MODE)
        cert_path, key_path = store.client_cert_path, store.client_key_path
        if cert_path.exists() and key_path.exists():
            return
        ca = _load_ca(store)
        client = issue(ca, CLIENT_NAME, role="admin")
        write_file(key_path, key_pem(client.key), SECRET_MODE)
        write_file(cert_path, cert_pem(client.cert), PUBLIC_MODE)


def _load_ca(store: Store):
    try:
        return load_ca(str(store.ca_cert_path), str(store.ca_key_path))
    except CertError as exc:
        raise MachineError(f"the store's CA cannot be used: {exc}") from None


def split_sans(values: list[str]) -> tuple[list[str], list[str]]:
    """(IPs, DNS names) of SAN values; MachineError names one that is neither."""
    ips: list[str] = []
    names: list[str] = []
    for value in values:
        text = value.strip()
        try:
            ips.append(str(ipaddress.ip_address(text.strip("[]"))))
            continue
        except ValueError:
            pass
        if (not text or not text.isascii() or any(c.isspace() or c in "/:@" for c in text)):
            raise MachineError(f"--tls-san {value!r} is neither an IP address nor a DNS name: "
                               "give e.g. --tls-san 203.0.113.9 or --tls-san docker.example.com")
        names.append(text)
    return ips, names


def server_sans(host: Host, ips: list[str]) -> tuple[list[str], list[str]]:
    """The server cert's SANs: the machine's IPs and --tls-san IPs; its name, localhost
    and --tls-san names. Duplicates dropped, order kept."""
    own_ips, own_names = split_sans(ips)   # a none --url may name its engine by DNS
    extra_ips, extra_names = split_sans(host.options.auth.extra_sans)
    all_ips = list(dict.fromkeys([*own_ips, *extra_ips]))
    names = list(dict.fromkeys([*own_names, host.name, "localhost", *extra_names]))
    return all_ips, names


def write_server_cert(store: Store, host: Host, ips: list[str]) -> None:
    """A new server cert for `host` naming `ips` (plus its name, localhost and --tls-san),
    with the role "manager" too on a --swarm-master (the manager serves with it and calls
    its agents with it). Also copies the store's CA and client cert (its certs/, or the
    --tls-* files: MACHINE_TLS_*) into the machine folder, which is what DOCKER_CERT_PATH
    points at. Sets host.options.auth.server_ips and where the certs came from; the caller
    saves the host."""
    ensure_ca_and_client(store)
    folder = store.machine_dir(host.name)
    sans_ips, sans_names = server_sans(host, ips)
    ca = _load_ca(store)
    role = "manager" if host.options.swarm.master else ""
    server = issue(ca, host.name, ips=sans_ips, dns=sans_names, server=True, role=role)
    auth = host.options.auth
    write_file(folder / auth.server_key, key_pem(server.key), SECRET_MODE)
    write_file(folder / auth.server_cert, cert_pem(server.cert), PUBLIC_MODE)
    for source, target, mode in ((store.ca_cert_path, auth.ca_cert, PUBLIC_MODE),
                                 (store.client_cert_path, auth.client_cert, PUBLIC_MODE),
                                 (store.client_key_path, auth.client_key, SECRET_MODE)):
        write_file(folder / target, source.read_bytes(), mode)
    auth.server_ips = list(dict.fromkeys(ips))
    # where they came from, as Docker Machine records it (--tls-* / MACHINE_TLS_*)
    auth.store_ca_cert, auth.store_ca_key = store.tls.ca_cert, store.tls.ca_key
    auth.store_client_cert, auth.store_client_key = store.tls.client_cert, store.tls.client_key


def server_cert_covers(store: Store, host: Host, ip: str) -> bool:
    """Whether the machine's server cert names `ip` (False when there is no cert yet)."""
    path = store.machine_dir(host.name) / host.options.auth.server_cert
    try:
        _, cert = read_cert(str(path), "server certificate")
    except CertError:
        return False
    return covers_host(cert, ip)


def machine_tls_files(store: Store, host: Host) -> tuple[Path, Path, Path]:
    """(CA, client cert, client key) in the machine folder: what DOCKER_CERT_PATH and
    `config`'s --tlscacert/--tlscert/--tlskey name."""
    folder = store.machine_dir(host.name)
    auth = host.options.auth
    return folder / auth.ca_cert, folder / auth.client_cert, folder / auth.client_key

