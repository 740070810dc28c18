"""`flock manage` and `flock join` stopping on SIGTERM while more SIGTERMs keep coming,
as when a supervisor and a process group (a namespace's or a container's teardown)
both signal: the stop runs to its end, exit status 0, nothing left in the process's
TMPDIR. Before, the loop's handlers were taken off as the stop began, and a second
signal killed the manager half-way (its private socket's folder, /tmp/flock-grpc-*,
was left behind: seen in a CI replica)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.conftest import free_port
from tests.support.procs import REPO


def _start(args: list[str], tmp_path, ready: str) -> tuple[subprocess.Popen, object]:
    own_tmp = tmp_path / "tmp"
    own_tmp.mkdir()
    log = tmp_path / "out.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flock", *args], cwd=REPO, stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(own_tmp)})
    deadline = time.monotonic() + 60
    try:
        while ready not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
    except BaseException:
        proc.kill()  # a start that failed leaves nothing running
        proc.wait(timeout=10)
        raise
    return proc, log


def _terminate_repeatedly(proc: subprocess.Popen) -> int:
    """SIGTERM every 5 ms until the process is gone; its exit status."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            break
        time.sleep(0.005)
    if proc.poll() is None:  # still there after a minute: killed, and the status says so
        proc.kill()
    return proc.wait(timeout=10)


def test_a_manager_signalled_again_while_stopping_still_stops_cleanly(tmp_path):
    port = free_port()
    proc, log = _start(["manage", "-H", f"tcp://127.0.0.1:{port}",
                        f"nodes://127.0.0.1:{free_port()}"], tmp_path,
                       "serving the Docker API")
    status = _terminate_repeatedly(proc)
    text = log.read_text(errors="replace")
    assert status == 0, text
    assert "manager stopping" in text
    assert os.listdir(tmp_path / "tmp") == []  # the private socket's folder went too


def test_an_agent_signalled_again_while_stopping_still_stops_cleanly(tmp_path):
    port = free_port()
    proc, log = _start(["join", "--advertise", f"127.0.0.1:{port}", "--runtime", "hollow",
                        "--name", "sig", "--state-dir", str(tmp_path / "state"),
                        f"nodes://127.0.0.1:{free_port()}"], tmp_path, "listening on port")
    status = _terminate_repeatedly(proc)
    text = log.read_text(errors="replace")
    assert status == 0, text
    assert "agent stopping" in text
