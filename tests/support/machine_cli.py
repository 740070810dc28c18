"""`flock machine` as a user runs it, for the integration tests of the provisioner: a
child process from the repository, with none of the caller's Docker, Docker Machine or
AWS settings (DOCKER_HOST, MACHINE_STORAGE_PATH, AWS_PROFILE...) leaking in, so that a
test sees only the store and the environment it names itself."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

from tests.support.procs import REPO

# What a developer's shell may hold that would change what `flock machine` does.
CALLERS_SETTINGS = ("DOCKER_", "MACHINE_", "FLOCK_MACHINE_", "FLOCK_WHEELHOUSE", "AWS_")


def flock_machine(*args: str, env: Mapping[str, str] | None = None,
                  input: str | bytes = "", timeout: float = 120
                  ) -> subprocess.CompletedProcess:
    """`python -m flock machine ARGS...`; `env` on top of this process's environment
    without the caller's settings. Text in and out unless `input` is bytes; stdin is
    never the terminal's, so a prompt reads `input` or an end of file."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(CALLERS_SETTINGS)}
    return subprocess.run([sys.executable, "-m", "flock", "machine", *args], cwd=REPO,
                          capture_output=True, text=not isinstance(input, bytes), input=input,
                          timeout=timeout, env={**base, "PYTHONPATH": str(REPO), **(env or {})})


def require_created(world):
    """`world` (a module's machine fixture with `created`, the outcome of its `flock
    machine create`) when that create succeeded; else the test fails with the create's
    words, which the create's own test reports in full."""
    import pytest

    created = world.created
    if created is None or created.returncode != 0:
        pytest.fail("creating the machine failed:\n"
                    f"{created.stderr if created else ''}\n{created.stdout if created else ''}")
    return world


def ok(result: subprocess.CompletedProcess) -> str:
    """The output of a command that must have succeeded (else its exit code and words)."""
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stderr}\n{result.stdout}"
    return result.stdout
