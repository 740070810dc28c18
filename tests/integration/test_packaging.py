"""Flock as an operator gets it: `python -m build` of the working tree, the wheel
installed into a fresh venv (its dependencies from PyPI, binary wheels only: no
compiler, no libvirt headers, no boto3), then the installed `flock` run from outside
the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from flock.common.version import __version__

REPO = Path(__file__).resolve().parents[2]
# Build output and caches of the working tree stay out of the copy that is built.
IGNORED = shutil.ignore_patterns(".venv", "build", "dist", "*.egg-info", "__pycache__",
                                 ".pytest_cache", ".hypothesis", ".ruff_cache", ".benchmarks")


def run(argv: list, cwd: Path, timeout: float = 600, env: dict | None = None):
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def clean_env() -> dict[str, str]:
    """The environment without anything that would let the repository leak in."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def head_revision(repo: Path = REPO) -> str:
    return run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], repo).stdout.strip()


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the working tree with its .git (the revision the build must stamp is
    the copy's: the lead may commit meanwhile)."""
    folder = tmp_path_factory.mktemp("packaging") / "source"
    shutil.copytree(REPO, folder, ignore=IGNORED, symlinks=True)
    return folder


@pytest.fixture(scope="module")
def dist(source) -> Path:
    """sdist + wheel built from the copy, the wheel through the sdist as `python -m
    build` does."""
    out = source.parent / "dist"
    run([sys.executable, "-m", "build", "--outdir", out, source], source.parent)
    return out


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh venv with only the wheel and its (binary) dependencies."""
    folder = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", folder], folder.parent, env=clean_env())
    wheel = next(dist.glob("flock-*.whl"))
    run([folder / "bin" / "python", "-m", "pip", "install", "-q", "--only-binary=:all:",
         wheel], folder.parent, timeout=900, env=clean_env())
    return folder


def flock(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "flock"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=clean_env())


@pytest.mark.slow
def test_build_makes_a_wheel_and_an_sdist(dist, source):
    wheels = list(dist.glob("*.whl"))
    sdists = list(dist.glob("*.tar.gz"))
    assert [w.name for w in wheels] == [f"flock-{__version__}-py3-none-any.whl"]
    assert [s.name for s in sdists] == [f"flock-{__version__}.tar.gz"]
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    assert not [n for n in names if n.startswith("tests/") or "/tests/" in n], \
        "tests must not ship in the wheel"
    for needed in ("flock/protos/agent.proto", "flock/protos/cluster.proto",
                   "flock/protos/agent_pb2.py", "flock/protos/agent_pb2_grpc.py",
                   "flock/protos/cluster_pb2.py", "flock/protos/cluster_pb2_grpc.py",
                   "flock/common/systemd/flock-manager.service",
                   "flock/common/systemd/flock-agent.service", "flock/common/_revision.py",
                   "flock/manager/ui/static/index.html",
                   "flock/manager/api/docker/engine_api.json"):
        assert needed in names, f"{needed} missing from the wheel"
    revision = zipfile.ZipFile(wheels[0]).read("flock/common/_revision.py").decode()
    assert repr(head_revision(source)) in revision
    with tarfile.open(sdists[0]) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    for needed in ("pyproject.toml", "setup.py", "common/_revision.py", "protos/agent.proto",
                   "common/systemd/flock-agent.service", "deploy/systemd/agent.env"):
        assert needed in members, f"{needed} missing from the sdist"
    assert not [m for m in members if m.startswith("tests/") or m.endswith(".pyc")]


@pytest.mark.slow
def test_wheel_adds_one_top_level_package(dist, venv):
    """Installing Flock puts `flock` into site-packages and nothing else of its own: no
    `manager`, `agent`, `protos`... that could collide with another distribution's."""
    wheel = next(dist.glob("flock-*.whl"))
    tops = {n.split("/", 1)[0] for n in zipfile.ZipFile(wheel).namelist()}
    assert tops == {"flock", f"flock-{__version__}.dist-info"}
    record = next(venv.glob("lib/python*/site-packages/flock-*.dist-info/RECORD")).read_text()
    installed = {line.split("/", 1)[0] for line in record.splitlines() if line}
    assert {t for t in installed if not t.startswith(("flock-", ".."))} == {"flock"}


@pytest.mark.slow
def test_installed_flock_names_version_and_revision(venv, source, tmp_path):
    done = flock(venv, "--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"flock {__version__} (git {head_revision(source)})"


@pytest.mark.slow
def test_plain_install_has_no_provider_libraries_nor_compiler(venv, tmp_path):
    python = str(venv / "bin" / "python")
    for module in ("libvirt", "boto3", "grpc_tools"):
        done = subprocess.run([python, "-c", f"import {module}"], cwd=tmp_path,
                              capture_output=True, text=True, env=clean_env())
        assert done.returncode != 0, f"{module} should not be installed by a plain install"
    done = subprocess.run(
        [python, "-c", "import flock, flock.protos.agent_pb2 as a, flock.protos.agent_pb2_grpc, "
                       "flock.protos.cluster_pb2 as c, flock.protos.cluster_pb2_grpc; "
                       "print(flock.__file__); print(a.DESCRIPTOR.name, c.DESCRIPTOR.name)"],
        cwd=tmp_path, capture_output=True, text=True, env=clean_env())
    assert done.returncode == 0, done.stderr
    where, descriptors = done.stdout.splitlines()
    assert where.startswith(str(venv)), f"flock imported from {where}, not the venv"
    assert descriptors == "agent.proto cluster.proto"


@pytest.mark.slow
def test_installed_commands_answer_without_optional_extras(venv, tmp_path):
    for command, flags in ((["manage"], ["--tlsverify", "--replication", "--strategy"]),
                           (["join"], ["--advertise", "--runtime", "--tlsverify"]),
                           (["certs", "init"], ["--ip"]),
                           # The provider libraries are absent, their drivers' flags are not.
                           (["machine", "create"], ["--libvirt-uri", "--libvirt-image",
                                                    "--amazonec2-region",
                                                    "--amazonec2-instance-type",
                                                    "--generic-ip-address"])):
        done = flock(venv, *command, "--help", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        for flag in flags:
            assert flag in done.stdout, f"flock {' '.join(command)} --help lacks {flag}"


@pytest.mark.slow
def test_installed_package_renders_its_systemd_units(venv, tmp_path):
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "flock.systemd", "render",
                           "agent", "--install-dir", "/srv/flock"], cwd=tmp_path,
                          capture_output=True, text=True, env=clean_env())
    assert done.returncode == 0, done.stderr
    assert "ExecStart=/srv/flock/venv/bin/flock $FLOCK_GLOBAL_OPTS join " in done.stdout


def test_source_checkout_asks_git_at_run_time(tmp_path):
    done = subprocess.run([sys.executable, "-m", "flock", "--version"], cwd=tmp_path,
                          capture_output=True, text=True,
                          env={**clean_env(), "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"flock {__version__} (git {head_revision()})\n"


def test_neither_git_nor_build_says_unknown(tmp_path):
    # Laid out as installed (flock/common/), outside any git work tree.
    shutil.copytree(REPO / "flock", tmp_path / "flock", ignore=IGNORED)
    shutil.copytree(REPO / "common", tmp_path / "flock" / "common", ignore=IGNORED)
    (tmp_path / "flock" / "common" / "_revision.py").unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-c",
                           "from flock.common.version import version_line; print(version_line())"],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**clean_env(), "PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"flock {__version__} (git unknown)\n"
