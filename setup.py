"""Build hook: stamp the git revision into the wheel and the sdist.

Everything else about the package is declared in pyproject.toml. An installed wheel has
no .git next to it, so `flock --version` (common/version.py) reads the revision from
`flock/common/_revision.py`, which only the build writes:
- building from a git checkout: `git rev-parse --short HEAD` goes into the wheel's
  build folder and into the sdist's release tree (never into the source tree);
- building a wheel from an unpacked sdist (what `python -m build` does): there is no
  git, and the sdist's own common/_revision.py is packaged as it is.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
# Where the file goes: the wheel's build folder is laid out by import name, the sdist's
# release tree like the repository.
WHEEL_REVISION_FILE = Path("flock") / "common" / "_revision.py"
SDIST_REVISION_FILE = Path("common") / "_revision.py"


def packages(package_dir: dict[str, str]) -> list[str]:
    """Every package under each folder pyproject.toml maps: `flock.manager.api.docker`
    for manager/api/docker/. A new subfolder with an __init__.py is packaged without
    editing a list."""
    found = []
    for name, folder in package_dir.items():
        root = HERE / folder
        for init in sorted(root.rglob("__init__.py")):
            parts = init.parent.relative_to(root).parts
            found.append(".".join((name, *parts)))
    return found


def git_revision() -> str | None:
    if not (HERE / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    revision = done.stdout.strip()
    return revision if done.returncode == 0 and revision else None


def write_revision(path: Path) -> None:
    revision = git_revision()
    if revision is None:
        return  # an sdist's file (if any) is kept as it is
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # the sdist tree may hard-link source files: never write through
    path.write_text('"""Written by setup.py when the package was built."""\n\n'
                    f"REVISION = {revision!r}\n")


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            write_revision(Path(self.build_lib) / WHEEL_REVISION_FILE)


class SDist(sdist):
    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, files)
        write_revision(Path(base_dir) / SDIST_REVISION_FILE)


PACKAGE_DIR = tomllib.loads((HERE / "pyproject.toml").read_text())["tool"]["setuptools"][
    "package-dir"]
setup(packages=packages(PACKAGE_DIR), cmdclass={"build_py": BuildPy, "sdist": SDist})
