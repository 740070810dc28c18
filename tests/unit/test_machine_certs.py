"""The store's CA and client cert, and each machine's server cert: SANs, roles, modes,
and whether a cert still names the machine's IP."""

from __future__ import annotations

import os
import socket
import ssl
import stat
import threading

import pytest

from flock.certs.check import check_signed_by, read_cert
from flock.certs.issue import roles_of, sans_of, usages_of
from flock.provisioner import machine_certs
from flock.provisioner.errors import MachineError
from flock.provisioner.host import Host
from flock.provisioner.store import Store


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path)


def made(store: Store, name: str = "m1", **swarm) -> Host:
    host = Host(name=name, driver_name="none")
    for key, value in swarm.items():
        setattr(host.options.swarm, key, value)
    store.create(host)
    return host


def test_ca_and_client_are_made_once(store):
    machine_certs.ensure_ca_and_client(store)
    folder = store.certs_dir
    first = {n: (folder / n).read_bytes() for n in ("ca.pem", "ca-key.pem", "cert.pem",
                                                    "key.pem")}
    assert mode(folder / "ca-key.pem") == 0o600 and mode(folder / "key.pem") == 0o600
    assert mode(folder / "ca.pem") == 0o644
    _, client = read_cert(str(folder / "cert.pem"))
    assert roles_of(client) == ["admin"] and usages_of(client) == {"client"}
    machine_certs.ensure_ca_and_client(store)
    assert {n: (folder / n).read_bytes() for n in first} == first


def test_threads_racing_for_the_first_ca_agree_on_one(store):
    threads = [threading.Thread(target=machine_certs.ensure_ca_and_client, args=(store,))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, client = read_cert(str(store.certs_dir / "cert.pem"))
    _, ca = read_cert(str(store.certs_dir / "ca.pem"))
    check_signed_by("cert.pem", client, "ca.pem", ca)   # raises if another CA won


def test_half_a_ca_is_refused(store):
    machine_certs.ensure_ca_and_client(store)
    (store.certs_dir / "ca-key.pem").unlink()
    with pytest.raises(MachineError, match="ca-key.pem is missing"):
        machine_certs.ensure_ca_and_client(store)


def test_server_cert_sans_and_files(store):
    host = made(store)
    host.options.auth.extra_sans = ["docker.example.com", "203.0.113.9"]
    machine_certs.write_server_cert(store, host, ["10.0.0.5"])
    folder = store.machine_dir("m1")
    _, cert = read_cert(str(folder / "server.pem"))
    ips, names, uris = sans_of(cert)
    assert ips == ["10.0.0.5", "203.0.113.9"]
    assert names == ["m1", "localhost", "docker.example.com"]
    assert uris == [] and usages_of(cert) == {"server"}
    assert mode(folder / "server-key.pem") == 0o600 and mode(folder / "key.pem") == 0o600
    for name in ("ca.pem", "cert.pem", "key.pem"):   # DOCKER_CERT_PATH's copies
        assert (folder / name).read_bytes() == (store.certs_dir / name).read_bytes()
    assert host.options.auth.server_ips == ["10.0.0.5"]


def test_a_masters_cert_also_has_the_manager_role(store):
    host = made(store, master=True, agent=True)
    machine_certs.write_server_cert(store, host, ["10.0.0.7"])
    _, cert = read_cert(str(store.machine_dir("m1") / "server.pem"))
    assert roles_of(cert) == ["manager"] and usages_of(cert) == {"server", "client"}


def test_covers(store):
    host = made(store)
    assert not machine_certs.server_cert_covers(store, host, "10.0.0.5")   # no cert yet
    machine_certs.write_server_cert(store, host, ["10.0.0.5"])
    assert machine_certs.server_cert_covers(store, host, "10.0.0.5")
    assert not machine_certs.server_cert_covers(store, host, "10.0.0.6")
    machine_certs.write_server_cert(store, host, ["10.0.0.6"])
    assert machine_certs.server_cert_covers(store, host, "10.0.0.6")
    assert not machine_certs.server_cert_covers(store, host, "10.0.0.5")


def test_a_dns_name_from_a_none_url_goes_in_as_a_dns_san(store):
    host = made(store)
    machine_certs.write_server_cert(store, host, ["engine.example.com"])
    _, cert = read_cert(str(store.machine_dir("m1") / "server.pem"))
    assert sans_of(cert)[:2] == ([], ["engine.example.com", "m1", "localhost"])


def test_the_certs_work_together_in_a_real_tls_handshake(store):
    host = made(store)
    machine_certs.write_server_cert(store, host, ["127.0.0.1"])
    ca, cert, key = machine_certs.machine_tls_files(store, host)
    folder = store.machine_dir("m1")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "server.pem", folder / "server-key.pem")
    server.load_verify_locations(ca)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.create_default_context(cafile=str(ca))
    client.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        seen: list[object] = []

        def serve() -> None:
            conn, _ = listener.accept()
            with server.wrap_socket(conn, server_side=True) as tls:
                seen.append(tls.getpeercert()["subject"])
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve)
        thread.start()
        with socket.create_connection(listener.getsockname()) as raw, \
                client.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.recv(2) == b"ok"
        thread.join(10)
    assert seen, "the server did not accept the client's cert"


@pytest.mark.parametrize("bad", ["a b", "", "http://x", "user@host"])
def test_bad_tls_san(bad):
    with pytest.raises(MachineError, match="neither an IP address nor a DNS name"):
        machine_certs.split_sans([bad])
