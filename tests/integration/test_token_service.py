"""token:// discovery against Flock's own token service, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.procs import REPO, Agent, Manager, api, free_port, wait_for

pytestmark = pytest.mark.timeout(90)


def token_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "flock.discovery.token_cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def flock(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "flock", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def new_token(base: str) -> str:
    import urllib.request

    request = urllib.request.Request(f"{base}/v1/clusters", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
        token = answer.read().decode()
    assert len(token) == 32 and all(c in "0123456789abcdef" for c in token)
    return token


@pytest.fixture
def service(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flock.discovery.token_cli", "token", "serve", "--addr",
         f"127.0.0.1:{port}", "--state", str(tmp_path / "tokens.json")],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == f"token service on http://127.0.0.1:{port}"
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_classic_api_shape_and_persistence(service, tmp_path):
    base, _ = service
    token = new_token(base)
    assert api(base, "POST", f"/v1/clusters/{token}?ttl=30", raw=b"10.0.0.1:4000")[0] == 200
    assert api(base, "POST", f"/v1/clusters/{token}?ttl=30", raw=b"10.0.0.2:4000")[0] == 200
    assert api(base, "GET", f"/v1/clusters/{token}") == (200, ["10.0.0.1:4000",
                                                              "10.0.0.2:4000"])
    saved = json.loads((tmp_path / "tokens.json").read_text())
    assert sorted(saved[token]) == ["10.0.0.1:4000", "10.0.0.2:4000"]
    # An entry whose TTL ran out is no longer listed.
    assert api(base, "POST", f"/v1/clusters/{token}?ttl=0.2", raw=b"10.0.0.3:4000")[0] == 200
    wait_for(lambda: "10.0.0.3:4000" not in api(base, "GET", f"/v1/clusters/{token}")[1],
             5, "the short-lived entry to expire")
    assert api(base, "DELETE", f"/v1/clusters/{token}")[0] == 204
    assert api(base, "GET", f"/v1/clusters/{token}") == (
        404, {"message": f"no such cluster token: {token}"})


def test_bad_input_answers_400(service):
    base, _ = service
    token = new_token(base)
    status, body = api(base, "POST", f"/v1/clusters/{token}", raw=b"not an address")
    assert status == 400 and "expected HOST:PORT" in body["message"]
    status, body = api(base, "POST", f"/v1/clusters/{token}?ttl=abc", raw=b"10.0.0.1:1")
    assert status == 400 and body["message"] == "invalid ttl 'abc'"


def test_create_join_manage_list_with_a_token(service, tmp_path):
    base, _ = service
    env = {"FLOCK_DISCOVERY_URL": base}
    created = token_cli("create", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert len(token) == 32
    url = f"token://{token}"
    agents = [Agent("n1", tmp_path, url, env=env).start(),
              Agent("n2", tmp_path, url, extra=["--discovery-url", base]).start()]
    manager = Manager("manager", tmp_path, url, extra=["--discovery-url", base])
    try:
        manager.start()
        wait_for(lambda: manager.nodes() == {"n1": "Healthy", "n2": "Healthy"}, 30,
                 "both agents through the token")
        listed = flock("list", url, env=env)
        assert sorted(listed.stdout.split()) == sorted(a.addr for a in agents)
    finally:
        manager.stop()
        for agent in agents:
            agent.cleanup()


def test_an_unknown_token_or_no_service_is_a_clear_error(service, tmp_path):
    base, _ = service
    listed = flock("list", "token://doesnotexist", env={"FLOCK_DISCOVERY_URL": base})
    assert listed.returncode == 1
    assert listed.stderr.strip() == (
        f"flock list: no such cluster token 'doesnotexist' at {base}; "
        "create one with `flock create`")
    nowhere = flock("list", "token://abc", env={"FLOCK_DISCOVERY_URL": ""})
    assert nowhere.returncode == 1 and "needs the token service's URL" in nowhere.stderr
    dead = token_cli("create", "--discovery-url", f"http://127.0.0.1:{free_port()}")
    assert dead.returncode == 1 and "cannot reach the token service" in dead.stderr
    agent = Agent("n1", tmp_path, "token://doesnotexist", env={"FLOCK_DISCOVERY_URL": base})
    try:
        agent.start()
        wait_for(lambda: "no such cluster token 'doesnotexist'" in agent.output(), 10,
                 "the agent to report the unknown token")
        assert agent.alive and "Traceback" not in agent.output()
    finally:
        agent.cleanup()
