"""docs/reference.md is what `python -m flock.docs_reference` prints today: a parser
change without regenerating the page fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "reference.md"


def generate(env: dict[str, str]) -> str:
    # A fresh process: modules imported by other tests must not lend their defaults.
    done = subprocess.run([sys.executable, "-m", "flock.docs_reference"], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**env, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_reference_page_is_fresh():
    assert PAGE.exists(), "docs/reference.md is missing: python -m flock.docs_reference " \
                          "> docs/reference.md"
    fresh = generate(dict(os.environ))
    assert PAGE.read_text() == fresh, (
        "docs/reference.md is stale: run `python -m flock.docs_reference > "
        "docs/reference.md` and commit it")


def test_reference_does_not_depend_on_this_machine(tmp_path):
    here = generate(dict(os.environ))
    elsewhere = generate({**os.environ, "HOME": str(tmp_path), "COLUMNS": "60",
                          "DOCKER_CERT_PATH": str(tmp_path / "certs"),
                          "FLOCK_DISCOVERY_URL": "http://example.invalid"})
    assert here == elsewhere
    assert str(tmp_path) not in elsewhere


def test_reference_covers_every_command_and_flag():
    text = generate(dict(os.environ))
    for heading in ("## flock\n", "## flock manage\n", "## flock join\n",
                    "## flock certs init\n"):
        assert heading in text
    for flag in ("--tlsverify", "--advertise", "--replication", "--strategy"):
        assert flag in text
    assert "[`flock manage`](#flock-manage)" in text
    assert "/root/" not in text and "~/.docker" in text
