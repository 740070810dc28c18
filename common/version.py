"""The version line `flock --version` prints: `flock 0.1.0 (git 1a2b3c4)`.

An operator who reports a bug needs the exact code they run, not only the release
number. Where the revision comes from depends on how Flock was installed:
- a source checkout (the package folder sits in a git work tree): ask git at run time,
  so the answer follows every commit and checkout;
- a wheel or sdist: `common/_revision.py` (installed as
  `flock/common/_revision.py`), written by the build (setup.py) from git;
- neither: `unknown`.
The revision is looked up only when `--version` is asked for: every other command
starts without running git.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

__version__ = "0.1.0"  # the one place the release number is written (pyproject reads it)

PACKAGE_DIR = Path(__file__).resolve().parent
UNKNOWN = "unknown"


def git_revision(work_tree: Path) -> str | None:
    """The short commit of `work_tree` from git, or None when it is not a checkout (or
    git is missing or refuses, e.g. a work tree owned by another user)."""
    if not (work_tree / ".git").exists() or shutil.which("git") is None:
        return None
    try:
        done = subprocess.run(["git", "-C", str(work_tree), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None


def built_revision() -> str | None:
    """The revision the wheel/sdist build wrote into common/_revision.py, if any."""
    try:
        from flock.common._revision import REVISION  # written at build time, absent in git
    except ImportError:
        return None
    return REVISION or None


def revision() -> str:
    """The git revision of the running code, or `unknown`."""
    return git_revision(PACKAGE_DIR.parent) or built_revision() or UNKNOWN


def version_line() -> str:
    """`flock VERSION (git REVISION)`."""
    return f"flock {__version__} (git {revision()})"


class VersionAction(argparse.Action):
    """`--version`: print the version line and exit 0, computing the revision only now."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the version and git revision, then exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default,
                         nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        sys.stdout.write(version_line() + "\n")
        sys.stdout.flush()
        parser.exit()
