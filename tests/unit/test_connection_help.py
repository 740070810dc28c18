"""The messages of a `flock` command that could not reach the manager
(flock/connection_help.py), from gRPC's own error texts."""

from __future__ import annotations

from flock.client import Target
from flock.connection_help import unreachable

TCP = Target("127.0.0.1:2375", "tcp://127.0.0.1:2375", "DOCKER_HOST")
UNIX = Target("unix:/run/flock.sock", "unix:///run/flock.sock", "FLOCK_HOST")
REFUSED = ("failed to connect to all addresses; last error: UNAVAILABLE: "
           "ipv4:127.0.0.1:2375: Failed to connect to remote host: Connection refused")
CLOSED = ("failed to connect to all addresses; last error: UNAVAILABLE: "
          "ipv4:127.0.0.1:2375: Socket closed")
RESET = ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:2375: "
         "recvmsg:Connection reset by peer (104)")
PLAIN_PEER = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2375: "
              "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:100000f7:SSL "
              "routines:OPENSSL_internal:WRONG_VERSION_NUMBER: Invalid certificate "
              "verification context: OK")
UNTRUSTED = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:2375: "
             "Tls handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
             "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: self signed certificate in "
             "certificate chain: OK")
WHERE = "cannot reach the manager at tcp://127.0.0.1:2375 (from DOCKER_HOST): "


def message(target: Target, tls: bool, detail: str, tls_there: bool | None = None) -> str:
    def speaks_tls(address: str) -> bool | None:
        assert address == target.grpc
        return tls_there

    return unreachable(target, tls, detail, "/certs/cert.pem", speaks_tls)


def test_nothing_listening_names_the_address_and_where_it_came_from():
    assert message(TCP, False, REFUSED) == WHERE + (
        "nothing listens there; is `flock manage` running, and is that one of its -H "
        "addresses?")
    assert message(UNIX, False, "... connect: No such file or directory (2)").startswith(
        "cannot reach the manager at unix:///run/flock.sock (from FLOCK_HOST): nothing "
        "listens there")


def test_tls_against_a_plain_manager():
    assert message(TCP, True, PLAIN_PEER) == WHERE + (
        "it does not speak TLS there; unset DOCKER_TLS_VERIFY and FLOCK_TLS_VERIFY (or drop "
        "--tlsverify)")


def test_a_manager_cert_our_ca_did_not_sign():
    assert message(TCP, True, UNTRUSTED) == WHERE + (
        "its certificate is not signed by the CA in ca.pem, or does not name that address "
        "(self signed certificate in certificate chain)")


def test_a_client_cert_the_manager_refused():
    assert message(TCP, True, RESET) == WHERE + (
        "it refused our client certificate (/certs/cert.pem); a manager with --tlsverify "
        "accepts only certificates signed by its CA")


def test_plaintext_against_a_tls_manager_is_found_by_asking_for_a_handshake():
    assert message(TCP, False, CLOSED, tls_there=True) == WHERE + (
        "it speaks TLS there; set DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH to the folder "
        "of ca.pem, cert.pem and key.pem (or pass --tlsverify)")
    assert message(TCP, False, CLOSED, tls_there=False) == WHERE + CLOSED
