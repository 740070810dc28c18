"""flock.provisioner.ssh against a real sshd in a network namespace: the key pair, waiting for
SSH (and naming what it waited for), refused keys, changed host keys, exit codes,
streamed output, stdin, SFTP both ways."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import subprocess
import threading
import time

import pytest

from flock.provisioner import ssh
from flock.provisioner.drivers.base import SSHDetails
from flock.provisioner.errors import MachineError
from tests.support.netns import NetnsHost


def _need_root() -> None:
    if os.geteuid() != 0 or not shutil.which("ip") or not os.path.exists("/usr/sbin/sshd"):
        pytest.fail("these tests need root, iproute2 and openssh-server (see scripts/test.sh)")


@pytest.fixture(scope="module")
def nshost(tmp_path_factory):
    _need_root()
    host = NetnsHost(tmp_path_factory.mktemp("nshost")).start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def machine_dir(tmp_path_factory, nshost):
    folder = tmp_path_factory.mktemp("machine")
    nshost.authorize(ssh.ensure_key_pair(folder))
    return folder


@pytest.fixture
def conn(nshost, machine_dir):
    with ssh.connect(_details(nshost, machine_dir), machine_dir / ssh.KNOWN_HOSTS,
                     timeout=10) as c:
        yield c


def _details(nshost, machine_dir, port: int = 22, key: str = "") -> SSHDetails:
    return SSHDetails(nshost.ip, port, "root", key or str(machine_dir / "id_rsa"))


def _extra_sshd(nshost: NetnsHost, port: int, host_key) -> subprocess.Popen:
    """A second sshd in the namespace on `port` with `host_key` (the same config)."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", nshost.name, "/usr/sbin/sshd", "-D", "-e", "-f",
         str(nshost.config), "-o", f"Port={port}", "-o", f"HostKey={host_key}",
         "-o", f"PidFile={host_key}.pid"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return proc


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)


def _keygen(path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


# --- the key pair -----------------------------------------------------------------------------
def test_key_pair_is_rsa_2048_private_to_its_owner_and_made_once(tmp_path):
    line = ssh.ensure_key_pair(tmp_path)
    key = tmp_path / "id_rsa"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert line.startswith("ssh-rsa ") and line.endswith(f" {tmp_path.name}")
    assert (tmp_path / "id_rsa.pub").read_text().strip() == line
    assert ssh.load_key(key).get_bits() == 2048
    assert ssh.ensure_key_pair(tmp_path) == line   # kept, not replaced


def test_an_unreadable_key_is_named(tmp_path):
    bad = tmp_path / "key"
    bad.write_text("not a key\n")
    with pytest.raises(MachineError, match="cannot be read as a private key"):
        ssh.load_key(bad)
    with pytest.raises(MachineError, match="not found"):
        ssh.load_key(tmp_path / "missing")


# --- connecting -------------------------------------------------------------------------------
def test_a_closed_port_fails_after_the_timeout_naming_the_step_and_the_address(nshost,
                                                                            machine_dir):
    started = time.monotonic()
    with pytest.raises(MachineError) as caught:
        ssh.connect(_details(nshost, machine_dir, port=2299), machine_dir / "kh-closed",
                    timeout=2.5)
    elapsed = time.monotonic() - started
    error = caught.value
    assert error.step == "Waiting for SSH"
    assert f"root@{nshost.ip}:2299" in str(error)
    assert "connection refused" in str(error) and "--ssh-timeout" in str(error)
    assert 2.0 <= elapsed < 8, elapsed


def test_a_port_that_closes_without_a_banner_is_retried_quietly(machine_dir, caplog):
    """What a booting VM's port forward does: TCP accepted, then closed. paramiko logs
    each such attempt with a traceback; only flock's own error may reach the user."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def slam() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except TimeoutError:
                continue
            client.close()

    thread = threading.Thread(target=slam, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.DEBUG), pytest.raises(MachineError) as caught:
            ssh.connect(SSHDetails("127.0.0.1", port, "root", str(machine_dir / "id_rsa")),
                        machine_dir / "kh-banner", timeout=2.5)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert caught.value.step == "Waiting for SSH" and f"127.0.0.1:{port}" in str(caught.value)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("paramiko")] == []


def test_connect_waits_for_a_host_that_comes_up_late(nshost, machine_dir, tmp_path):
    _keygen(tmp_path / "hostkey")
    started: list[subprocess.Popen] = []
    timer = threading.Timer(2.0, lambda: started.append(
        _extra_sshd(nshost, 2201, tmp_path / "hostkey")))
    timer.start()
    steps: list[str] = []
    try:
        begin = time.monotonic()
        with ssh.connect(_details(nshost, machine_dir, port=2201), tmp_path / "kh",
                         timeout=20, progress=steps.append) as c:
            assert c.run("echo up").text == "up\n"
        assert time.monotonic() - begin >= 1.5
        assert steps == [f"Waiting for SSH (root@{nshost.ip}:2201)"]
    finally:
        timer.join()
        for proc in started:
            _stop(proc)


def test_a_key_the_host_does_not_accept_is_refused_at_once_with_what_to_do(nshost, tmp_path):
    _keygen(tmp_path / "stranger")
    started = time.monotonic()
    with pytest.raises(MachineError) as caught:
        ssh.connect(SSHDetails(nshost.ip, 22, "root", str(tmp_path / "stranger")),
                    tmp_path / "kh", timeout=60)
    text = str(caught.value)
    assert caught.value.step == "Waiting for SSH"
    assert "refused the SSH key" in text and str(tmp_path / "stranger") in text
    assert "ssh-copy-id" in text and "authorized_keys" in text
    assert time.monotonic() - started < 15   # not the whole timeout


def test_the_host_key_is_remembered_and_a_changed_one_refused(nshost, machine_dir, tmp_path):
    known = tmp_path / "known_hosts"
    _keygen(tmp_path / "first")
    _keygen(tmp_path / "second")
    details = _details(nshost, machine_dir, port=2202)
    proc = _extra_sshd(nshost, 2202, tmp_path / "first")
    try:
        with ssh.connect(details, known, timeout=10) as c:
            assert c.run("true").exit_code == 0
        remembered = known.read_text()
        assert remembered.startswith(f"[{nshost.ip}]:2202 ssh-ed25519 ")
        with ssh.connect(details, known, timeout=10):   # the same key: fine, not re-added
            pass
        assert known.read_text() == remembered
    finally:
        _stop(proc)
    proc = _extra_sshd(nshost, 2202, tmp_path / "second")   # the "rebuilt" host
    try:
        with pytest.raises(MachineError) as caught:
            ssh.connect(details, known, timeout=10)
        text = str(caught.value)
        assert "CHANGED" in text and "SHA256:" in text
        assert f"ssh-keygen -f {known} -R '[{nshost.ip}]:2202'" in text
        # Following the advice works.
        subprocess.run(["ssh-keygen", "-f", str(known), "-R", f"[{nshost.ip}]:2202"],
                       check=True, capture_output=True)
        with ssh.connect(details, known, timeout=10) as c:
            assert c.run("true").exit_code == 0
    finally:
        _stop(proc)


# --- commands ---------------------------------------------------------------------------------
def test_exit_codes_and_both_streams(conn):
    result = conn.run("echo out; echo err >&2; exit 7")
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")
    assert conn.run("true").exit_code == 0
    assert conn.run("kill -9 $$").exit_code == 255   # killed by a signal: no exit status


def test_output_is_streamed_as_it_comes(conn):
    seen: list[tuple[float, bytes]] = []
    begin = time.monotonic()
    conn.run("echo one; sleep 1.5; echo two",
             stdout=lambda data: seen.append((time.monotonic() - begin, data)))
    assert b"".join(d for _, d in seen) == b"one\ntwo\n"
    first = next(t for t, d in seen if b"one" in d)
    assert first < 1.2   # arrived before the command ended


def test_input_and_stdin_reach_the_command(conn, tmp_path):
    assert conn.run("wc -c", input=b"12345").text.strip() == "5"
    source = tmp_path / "in"
    source.write_bytes(b"x" * 100000)
    with open(source, "rb") as fh:
        assert conn.run("wc -c", stdin=fh).text.strip() == "100000"


def test_check_names_the_step_and_a_timeout_stops_a_hung_command(conn):
    with pytest.raises(MachineError) as caught:
        conn.check("echo broken >&2; exit 4", step="Installing Flock")
    assert caught.value.step == "Installing Flock"
    assert "exit code 4" in str(caught.value) and "broken" in str(caught.value)
    started = time.monotonic()
    with pytest.raises(MachineError, match="did not finish within 1s"):
        conn.run("sleep 30", timeout=1)
    assert time.monotonic() - started < 5


# --- files ------------------------------------------------------------------------------------
def test_sftp_copies_folders_both_ways_with_their_modes(conn, tmp_path):
    src = tmp_path / "tree"
    (src / "sub" / "deeper").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (src / "sub" / "run.sh").chmod(0o750)
    (src / "sub" / "deeper" / "blob").write_bytes(os.urandom(200000))
    remote = f"/tmp/flock-sftp-{tmp_path.name}"
    try:
        with pytest.raises(MachineError, match="is a directory"):
            conn.put(src, remote)
        conn.put(src, remote, recursive=True)
        listing = conn.run(f"cd {remote} && find . -type f | sort && stat -c %a sub/run.sh")
        assert listing.text.split() == ["./a.txt", "./sub/deeper/blob", "./sub/run.sh", "750"]
        back = tmp_path / "back"
        conn.get(remote, back, recursive=True)
        for path in src.rglob("*"):
            twin = back / path.relative_to(src)
            assert twin.exists(), twin
            if path.is_file():
                assert twin.read_bytes() == path.read_bytes()
                assert stat.S_IMODE(twin.stat().st_mode) == stat.S_IMODE(path.stat().st_mode)
        with pytest.raises(MachineError, match="no such file or directory"):
            conn.get(f"{remote}/missing", tmp_path / "x")
    finally:
        conn.run(f"rm -rf {remote}")


def test_put_bytes_writes_with_its_mode_in_one_step(conn, tmp_path):
    remote = f"/tmp/flock-bytes-{tmp_path.name}"
    try:
        conn.put_bytes(b"secret\n", remote, 0o600)
        assert conn.run(f"stat -c %a {remote}; cat {remote}").text == "600\nsecret\n"
        conn.put_bytes(b"new\n", remote, 0o644)
        assert conn.run(f"cat {remote}; ls {remote}*").text == f"new\n{remote}\n"
    finally:
        conn.run(f"rm -f {remote}")


def test_the_namespace_host_leaves_nothing_behind(tmp_path):
    _need_root()
    host = NetnsHost(tmp_path / "h").start()
    host.exec("sh", "-c", "sleep 300 >/dev/null 2>&1 &")
    assert len(host.pids()) >= 2
    host.stop()
    assert host.name not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                           text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert host.veth_host not in links
