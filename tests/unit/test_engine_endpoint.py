"""DOCKER_HOST values as the docker CLI reads them (docker/cli opts/hosts.go:
parseDockerDaemonHost, DefaultHTTPPort 2375; cli/flags: DOCKER_TLS_VERIFY is on when
non-empty, DOCKER_CERT_PATH else ~/.docker), and the agent's refusals of the rest."""

from __future__ import annotations

import argparse

import pytest

from flock.agent.cli import JoinError, engine_options
from flock.agent.engine_endpoint import parse_docker_host
from flock.certs import issue, make_ca, write_identity


@pytest.mark.parametrize("value,url,path,host,port", [
    ("unix:///run/e.sock", "unix:///run/e.sock", "/run/e.sock", "", 0),
    ("/run/e.sock", "unix:///run/e.sock", "/run/e.sock", "", 0),
    ("tcp://10.0.0.5:2376", "tcp://10.0.0.5:2376", "", "10.0.0.5", 2376),
    ("tcp://engine.lan", "tcp://engine.lan:2375", "", "engine.lan", 2375),
    ("10.0.0.5:2376", "tcp://10.0.0.5:2376", "", "10.0.0.5", 2376),
    ("tcp://[::1]:2376", "tcp://[::1]:2376", "", "::1", 2376),
])
def test_docker_host_values(value, url, path, host, port):
    endpoint = parse_docker_host(value)
    assert (endpoint.url, endpoint.path, endpoint.host, endpoint.port) == (url, path, host, port)


@pytest.mark.parametrize("value,message", [
    ("ssh://me@engine", "unsupported --docker-host 'ssh://me@engine': expected unix:///"),
    ("npipe:////./pipe/docker_engine", "unsupported --docker-host"),
    ("unix://", "empty socket path"),
    ("tcp://engine:99999", "bad port"),
    ("tcp://engine:2376/v1.41", "expected tcp://HOST:PORT"),
    ("tcp://:2376", "expected tcp://HOST:PORT"),
])
def test_docker_host_refusals(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_docker_host(value)


def args(**given) -> argparse.Namespace:
    base = {"docker_host": None, "docker_tlsverify": False, "docker_cert_path": None,
            "runtime": "docker"}
    return argparse.Namespace(**{**base, **given})


@pytest.fixture
def cert_path(tmp_path):
    ca = make_ca("Engine CA")
    write_identity(tmp_path / "client", issue(ca, "client", role="admin"), ca.cert)
    return str(tmp_path / "client")


def test_flags_win_over_the_docker_cli_variables(cert_path):
    env = {"DOCKER_HOST": "tcp://10.0.0.5:2376", "DOCKER_TLS_VERIFY": "1",
           "DOCKER_CERT_PATH": cert_path}
    host, tls = engine_options(args(), env)
    assert host == "tcp://10.0.0.5:2376" and tls is not None
    assert engine_options(args(docker_host="unix:///e.sock"), {}) == ("unix:///e.sock", None)
    assert engine_options(args(), {}) == ("unix:///var/run/docker.sock", None)
    # As the docker CLI: any non-empty DOCKER_TLS_VERIFY turns verification on, "0" too.
    _, tls = engine_options(args(docker_host="tcp://e:2376"),
                            {"DOCKER_TLS_VERIFY": "0", "DOCKER_CERT_PATH": cert_path})
    assert tls is not None


def test_tls_settings_that_cannot_work_stop_join(cert_path, tmp_path):
    with pytest.raises(JoinError, match="is a unix socket: TLS"):
        engine_options(args(docker_tlsverify=True, docker_cert_path=cert_path), {})
    with pytest.raises(JoinError, match="ca.pem: no such file"):
        engine_options(args(docker_host="tcp://e:2376", docker_tlsverify=True),
                       {"DOCKER_CERT_PATH": str(tmp_path / "none")})
    with pytest.raises(JoinError, match="--docker-cert-path given without --docker-tlsverify"):
        engine_options(args(docker_host="tcp://e:2376", docker_cert_path=cert_path), {})
    # Other runtimes do not talk to an engine: its settings are not their business.
    assert engine_options(args(runtime="exec"), {"DOCKER_TLS_VERIFY": "1"})[1] is None


def test_the_variables_tls_is_for_tcp_engines_only(tmp_path):
    """DOCKER_TLS_VERIFY left over from `eval $(flock machine env m1)` does not stop an
    agent of the machine's own socket (the flag does: test above)."""
    env = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path / "none")}
    assert engine_options(args(docker_host="unix:///e.sock"), env) == ("unix:///e.sock", None)
    assert engine_options(args(), env) == ("unix:///var/run/docker.sock", None)
