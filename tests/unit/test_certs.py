"""certs/: making a CA and certs, writing them safely, and the checks at start that turn a
bad file into one sentence naming it."""

from __future__ import annotations

import datetime
import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from flock.certs import (
    CertError,
    TLSFiles,
    covers_host,
    expiry_warnings,
    issue,
    load_ca,
    load_identity,
    make_ca,
    roles_of,
    write_ca,
    write_identity,
)
from flock.certs.exposure import is_loopback, is_wildcard
from flock.certs.files import key_pem, write_file
from flock.certs.issue import sans_of, usages_of
from flock.cli import main as flock_main

UTC = datetime.UTC


@pytest.fixture(scope="module")
def ca():
    return make_ca()


@pytest.fixture
def server_files(tmp_path, ca) -> TLSFiles:
    made = issue(ca, "agent-1", ips=["127.0.0.1", "10.0.0.5"], dns=["agent-1.lan"], server=True)
    return write_identity(tmp_path / "server", made, ca.cert)


def key_body(path: str) -> list[str]:
    """The base64 lines of a PEM key: what must never show up anywhere."""
    return [line for line in open(path).read().splitlines() if not line.startswith("-----")]


def assert_names_without_secret(exc: CertError, path: str, problem: str,
                                key_path: str) -> None:
    message = str(exc)
    assert path in message and problem in message, message
    assert not any(line in message for line in key_body(key_path))


# ------------------------------------------------------------------ issuing
def test_server_cert_names_its_addresses_and_is_only_for_servers(ca):
    made = issue(ca, "agent-1", ips=["127.0.0.1", "::1"], dns=["agent-1.lan"], server=True)
    assert sans_of(made.cert)[:2] == (["127.0.0.1", "::1"], ["agent-1.lan"])
    assert usages_of(made.cert) == {"server"} and roles_of(made.cert) == []
    made.cert.verify_directly_issued_by(ca.cert)
    assert covers_host(made.cert, "127.0.0.1") and covers_host(made.cert, "[::1]")
    assert covers_host(made.cert, "AGENT-1.lan") and not covers_host(made.cert, "10.0.0.9")
    assert not covers_host(made.cert, "localhost")


def test_client_cert_carries_its_role_and_a_manager_cert_can_be_both(ca):
    admin = issue(ca, "alice", role="admin")
    assert roles_of(admin.cert) == ["admin"] and usages_of(admin.cert) == {"client"}
    manager = issue(ca, "m1", ips=["10.0.0.1"], server=True, role="manager")
    assert roles_of(manager.cert) == ["manager"]
    assert usages_of(manager.cert) == {"client", "server"}


def test_wildcard_dns_names_cover_one_label():
    ca = make_ca()
    made = issue(ca, "w", dns=["*.nodes.lan"], server=True)
    assert covers_host(made.cert, "a.nodes.lan")
    assert not covers_host(made.cert, "a.b.nodes.lan") and not covers_host(made.cert, "nodes.lan")


@pytest.mark.parametrize("kwargs, message", [
    ({"server": True}, "at least one IP or DNS name"),
    ({"ips": ["300.1.1.1"], "server": True}, "invalid IP address '300.1.1.1'"),
    ({"dns": ["bad name"], "server": True}, "invalid DNS name"),
    ({"role": "root"}, "unknown role 'root'"),
    ({}, "a server, a client role, or both"),
    ({"role": "admin", "days": 0}, "at least 1 day"),
])
def test_bad_requests_for_a_cert_say_what_is_wrong(ca, kwargs, message):
    with pytest.raises(ValueError, match=message):
        issue(ca, "x", **kwargs)


# ------------------------------------------------------------------ files
def test_keys_are_written_0600_and_atomically(tmp_path, ca):
    old = os.umask(0)
    try:
        files = write_identity(tmp_path / "id", issue(ca, "c", role="admin"), ca.cert)
        ca_cert, ca_key = write_ca(tmp_path / "ca", ca)
    finally:
        os.umask(old)
    for path in (files.key, ca_key):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for path in (files.cert, files.ca, ca_cert):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert sorted(os.listdir(tmp_path / "id")) == ["ca.pem", "cert.pem", "key.pem"]
    assert load_ca(ca_cert, ca_key).cert == ca.cert


def test_existing_files_are_kept_unless_forced(tmp_path, ca):
    write_ca(tmp_path, ca)
    before = (tmp_path / "ca-key.pem").read_bytes()
    with pytest.raises(CertError, match="ca.pem: already exists"):
        write_ca(tmp_path, make_ca())
    assert (tmp_path / "ca-key.pem").read_bytes() == before
    write_ca(tmp_path, make_ca(), force=True)
    assert (tmp_path / "ca-key.pem").read_bytes() != before


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "key.pem"
    with pytest.raises(TypeError):
        write_file(target, "not bytes", 0o600)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ checks at start
def test_a_good_server_identity_loads(server_files):
    ident = load_identity(server_files, hosts=["10.0.0.5", "agent-1.lan"], server=True)
    assert ident.expires > datetime.datetime.now(UTC) + datetime.timedelta(days=800)
    assert b"PRIVATE KEY" in ident.key_pem and "key_pem" not in repr(ident)


def test_missing_key_file(server_files):
    os.unlink(server_files.key)
    with pytest.raises(CertError) as err:
        load_identity(server_files, server=True)
    assert str(err.value) == f"{server_files.key}: no such file (the private key)"


def test_expired_cert(tmp_path, ca):
    past = datetime.datetime.now(UTC) - datetime.timedelta(days=40)
    made = issue(ca, "old", ips=["127.0.0.1"], server=True, days=10, start=past)
    files = write_identity(tmp_path, made, ca.cert)
    with pytest.raises(CertError) as err:
        load_identity(files, server=True)
    assert_names_without_secret(err.value, files.cert, "the certificate expired on",
                                files.key)


def test_cert_not_yet_valid(tmp_path, ca):
    future = datetime.datetime.now(UTC) + datetime.timedelta(days=3)
    files = write_identity(tmp_path, issue(ca, "new", role="admin", start=future), ca.cert)
    with pytest.raises(CertError, match="is not valid before .*check this machine's clock"):
        load_identity(files)


def test_expired_ca(tmp_path):
    past = datetime.datetime.now(UTC) - datetime.timedelta(days=40)
    old_ca = make_ca(days=10, start=past)
    files = write_identity(tmp_path, issue(old_ca, "c", role="admin", start=past), old_ca.cert)
    with pytest.raises(CertError, match=f"^{files.ca}: the CA certificate expired"):
        load_identity(files)


def test_cert_for_the_wrong_host(server_files):
    with pytest.raises(CertError) as err:
        load_identity(server_files, hosts=["192.168.1.9"], server=True)
    assert_names_without_secret(err.value, server_files.cert, "not for 192.168.1.9",
                                server_files.key)
    assert "127.0.0.1, 10.0.0.5, agent-1.lan" in str(err.value)


def test_key_that_does_not_match_the_cert(tmp_path, server_files, ca):
    other = write_identity(tmp_path / "other", issue(ca, "x", role="admin"), ca.cert)
    files = TLSFiles(server_files.ca, server_files.cert, other.key)
    with pytest.raises(CertError) as err:
        load_identity(files, server=True)
    assert_names_without_secret(
        err.value, other.key, f"does not match the certificate {server_files.cert}", other.key)


def test_cert_of_another_ca(tmp_path, server_files):
    stranger = make_ca("Stranger CA")
    files = write_identity(tmp_path / "s", issue(stranger, "s", ips=["127.0.0.1"],
                                                 server=True), stranger.cert)
    mixed = TLSFiles(server_files.ca, files.cert, files.key)
    with pytest.raises(CertError, match=f"^{files.cert}: not signed by the CA in "
                                        f"{server_files.ca}.*Stranger CA"):
        load_identity(mixed, server=True)


def test_a_leaf_is_not_a_ca(server_files):
    files = TLSFiles(server_files.cert, server_files.cert, server_files.key)
    with pytest.raises(CertError, match="not a CA certificate"):
        load_identity(files)


def test_client_and_server_purposes_are_checked(tmp_path, ca, server_files):
    with pytest.raises(CertError, match="not a client certificate with the manager role"):
        load_identity(server_files, role="manager")
    admin = write_identity(tmp_path / "a", issue(ca, "a", role="admin"), ca.cert)
    with pytest.raises(CertError, match="not a client certificate with the manager role"):
        load_identity(admin, role="manager")
    with pytest.raises(CertError, match="not a server certificate"):
        load_identity(admin, server=True)


def test_garbage_encrypted_and_folder_paths(tmp_path, server_files, ca):
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(CertError, match=f"^{junk}: not a PEM certificate"):
        load_identity(TLSFiles(server_files.ca, str(junk), server_files.key))
    with pytest.raises(CertError, match=f"^{junk}: not a PEM private key"):
        load_identity(TLSFiles(server_files.ca, server_files.cert, str(junk)))
    made = issue(ca, "e", role="admin")
    locked = tmp_path / "locked.pem"
    locked.write_bytes(made.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass")))
    with pytest.raises(CertError, match="encrypted with a passphrase"):
        load_identity(TLSFiles(server_files.ca, server_files.cert, str(locked)))
    with pytest.raises(CertError, match="is a folder"):
        load_identity(TLSFiles(str(tmp_path), server_files.cert, server_files.key))


def test_without_verification_the_ca_file_is_not_needed(server_files):
    os.unlink(server_files.ca)
    assert load_identity(server_files, server=True, need_ca=False).ca_pem == b""


def test_expiry_warnings_within_30_days(tmp_path, ca):
    soon = write_identity(tmp_path / "soon", issue(ca, "s", role="admin", days=12), ca.cert)
    later = write_identity(tmp_path / "later", issue(ca, "l", role="admin"), ca.cert)
    idents = {"front": load_identity(soon), "agents": load_identity(later)}
    warnings = expiry_warnings(idents)
    assert len(warnings) == 1 and warnings[0].startswith(f"front: {soon.cert} expires in 11 days")
    now = datetime.datetime.now(UTC) + datetime.timedelta(days=20)
    assert f"front: {soon.cert} expired on" in expiry_warnings(idents, now=now)[0]


def test_loopback_and_wildcards():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "10.0.0.1", "::", "example.com", ""]))
    assert is_wildcard("0.0.0.0") and is_wildcard("[::]") and not is_wildcard("127.0.0.1")


# ------------------------------------------------------------------ flock certs
def test_flock_certs_init_makes_a_working_setup(tmp_path, capsys):
    assert flock_main(["certs", "init", str(tmp_path), "--ip", "10.0.0.7",
                       "--dns", "mgr.lan"]) == 0
    out = capsys.readouterr().out
    assert f"DOCKER_CERT_PATH={tmp_path / 'client'}" in out and "tcp://10.0.0.7:2376" in out
    manager = load_identity(TLSFiles.in_folder(tmp_path / "manager"),
                            hosts=["10.0.0.7", "127.0.0.1", "mgr.lan"], server=True,
                            role="manager")
    load_identity(TLSFiles.in_folder(tmp_path / "agent"), hosts=["localhost"], server=True)
    load_identity(TLSFiles.in_folder(tmp_path / "client"), role="admin")
    assert stat.S_IMODE(os.stat(tmp_path / "ca" / "ca-key.pem").st_mode) == 0o600
    assert not any(line in out for line in key_body(manager.files.key))
    assert flock_main(["certs", "init", str(tmp_path)]) == 1
    assert "ca.pem: already exists (use --force" in capsys.readouterr().err


def test_flock_certs_ca_server_client_and_show(tmp_path, capsys):
    ca_dir, out = tmp_path / "ca", tmp_path / "srv"
    assert flock_main(["certs", "ca", "--out", str(ca_dir)]) == 0
    assert flock_main(["certs", "server", "--ca", str(ca_dir), "--name", "n1",
                       "--ip", "10.1.1.1", "--dns", "n1.lan", "--out", str(out)]) == 0
    assert flock_main(["certs", "client", "--ca", str(ca_dir), "--role", "manager",
                       "--out", str(tmp_path / "mgr")]) == 0
    capsys.readouterr()
    assert flock_main(["certs", "show", str(out / "cert.pem"),
                       str(tmp_path / "mgr" / "cert.pem")]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "server; for 10.1.1.1, n1.lan; expires" in shown[0]
    assert "client; role manager; expires" in shown[1]
    load_identity(TLSFiles.in_folder(tmp_path / "mgr"), role="manager")


@pytest.mark.parametrize("argv, message", [
    (["server", "--name", "n", "--out", "{o}"], "needs at least one IP or DNS name"),
    (["server", "--name", "n", "--ip", "1.2.3", "--out", "{o}"], "invalid IP address"),
    (["client", "--role", "admin", "--out", "{o}", "--days", "0"], "at least 1 day"),
])
def test_flock_certs_bad_input(tmp_path, capsys, argv, message):
    write_ca(tmp_path / "ca", make_ca())
    args = ["certs", *[a.format(o=tmp_path / "o") for a in argv], "--ca", str(tmp_path / "ca")]
    assert flock_main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("flock certs: error: ") and message in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_flock_certs_with_a_missing_ca(tmp_path, capsys):
    assert flock_main(["certs", "client", "--ca", str(tmp_path), "--role", "admin",
                       "--out", str(tmp_path / "o")]) == 1
    assert f"{tmp_path}/ca.pem: no such file (the CA certificate)" in capsys.readouterr().err


def test_key_pem_is_unencrypted_pkcs8(ca):
    assert key_pem(ca.key).startswith(b"-----BEGIN PRIVATE KEY-----")
