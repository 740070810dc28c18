"""common/event_loop.py: uvloop unless FLOCK_EVENT_LOOP asks for the standard loop; a
wrong value is refused with the choices."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
import uvloop

from flock.common import event_loop


async def loop_class() -> type:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default(monkeypatch):
    monkeypatch.delenv("FLOCK_EVENT_LOOP", raising=False)
    assert event_loop.run(loop_class()) is uvloop.Loop
    monkeypatch.setenv("FLOCK_EVENT_LOOP", "uvloop")
    assert event_loop.run(loop_class()) is uvloop.Loop


def test_the_standard_loop_on_request(monkeypatch):
    monkeypatch.setenv("FLOCK_EVENT_LOOP", "asyncio")
    assert not issubclass(event_loop.run(loop_class()), uvloop.Loop)


def test_an_unknown_loop_is_refused_with_the_choices(monkeypatch):
    monkeypatch.setenv("FLOCK_EVENT_LOOP", "tokio")
    wanted = "FLOCK_EVENT_LOOP='tokio': use one of auto, uvloop, asyncio"
    with pytest.raises(event_loop.LoopChoiceError, match=wanted):
        event_loop.loop_factory()


def test_an_agent_refuses_an_unknown_loop_in_one_line(tmp_path):
    """`flock join` runs on the chosen loop too: a wrong choice is its error line and
    exit status 1, before it starts anything, not a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "flock", "join", "--advertise", "127.0.0.1:1",
         "--runtime", "hollow", "--name", "n", "--state-dir", str(tmp_path / "n")],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "FLOCK_EVENT_LOOP": "tokio"})
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "flock join: error: FLOCK_EVENT_LOOP='tokio': use one of auto, uvloop, asyncio")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "n").exists()
