"""The wheelhouse that installs Flock on a machine without the machine reaching PyPI.

Machines are often in networks that reach nothing but their cluster, so provisioning
brings everything along: Flock's own wheel, built from this source checkout, and wheels of
its runtime dependencies for the machine's Python and CPU. Both are cached under the
store's cache folder: dependency wheels are reused between runs (rebuilt only when the
dependency list changes), Flock's wheel is rebuilt when its source changes.

FLOCK_WHEELHOUSE=DIR uses a prepared folder of wheels instead (for instance made with
`pip wheel flock -w DIR` on a machine like the targets); it is checked against the
machine's Python before anything is uploaded.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flock.provisioner.errors import MachineError

ENV_WHEELHOUSE = "FLOCK_WHEELHOUSE"
STEP = "Preparing Flock's wheels"
SOURCE = Path(__file__).resolve().parents[1]   # the checkout this module runs from
TOP_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE")
PIP_TIMEOUT = 900
KEEP_BUILDS = 3
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<ver>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)"
                    r"-(?P<plat>[^-]+)\.whl$")
_thread_lock = threading.Lock()


@dataclass(frozen=True)
class PythonTarget:
    """The machine's Python, as far as wheels care."""

    version: tuple[int, int]           # (3, 11)
    machine: str                       # x86_64, aarch64
    glibc: tuple[int, int] | None      # (2, 36); None for musl or unknown
    path: str = "python3"

    @property
    def tag(self) -> str:
        return f"cp{self.version[0]}{self.version[1]}-{self.machine}"

    def describe(self) -> str:
        libc = f"glibc {self.glibc[0]}.{self.glibc[1]}" if self.glibc else "no glibc"
        return f"Python {self.version[0]}.{self.version[1]} on {self.machine} ({libc})"

    @classmethod
    def local(cls) -> PythonTarget:
        import platform

        libc, ver = platform.libc_ver()
        return cls(sys.version_info[:2], platform.machine(), _glibc(libc, ver), sys.executable)

    @classmethod
    def parse(cls, text: str, path: str) -> PythonTarget:
        """From the output of PROBE run by the machine's python."""
        data = json.loads(text)
        return cls((int(data["major"]), int(data["minor"])), data["machine"],
                   _glibc(data.get("libc", ""), data.get("libc_version", "")), path)


# Run by the machine's python3: what `PythonTarget.parse` reads.
PROBE = ("import json,platform,sys;l=platform.libc_ver();print(json.dumps({'major':"
         "sys.version_info[0],'minor':sys.version_info[1],'machine':platform.machine(),"
         "'libc':l[0],'libc_version':l[1]}))")


def _glibc(libc: str, version: str) -> tuple[int, int] | None:
    if libc != "glibc":
        return None
    parts = version.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


@dataclass(frozen=True)
class Wheelhouse:
    wheels: tuple[Path, ...]   # everything to upload
    flock_wheel: Path          # the one to install (its dependencies come from the rest)


# --- compatibility --------------------------------------------------------------------------
def wheel_fits(filename: str, target: PythonTarget) -> bool:
    """Whether pip on `target` would install this wheel (its python, ABI and platform)."""
    match = _WHEEL.match(filename)
    if not match:
        return False
    major, minor = target.version
    pys, abis, plats = (match.group(k).split(".") for k in ("py", "abi", "plat"))
    py_ok = any(p in (f"py{major}", f"py{major}{minor}", f"cp{major}{minor}")
                or _abi3_python(p, major, minor) for p in pys)
    abi_ok = any(a in ("none", f"cp{major}{minor}") or a == "abi3" for a in abis)
    return py_ok and abi_ok and any(_platform_fits(p, target) for p in plats)


def _abi3_python(tag: str, major: int, minor: int) -> bool:
    m = re.fullmatch(r"cp(\d)(\d+)", tag)
    return bool(m) and int(m.group(1)) == major and int(m.group(2)) <= minor


def _platform_fits(plat: str, target: PythonTarget) -> bool:
    if plat == "any":
        return True
    arch = target.machine
    if plat == f"linux_{arch}":
        return True
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    m = re.fullmatch(r"(manylinux1|manylinux2010|manylinux2014)_(.+)", plat)
    if m:
        need, parch = legacy[m.group(1)], m.group(2)
    else:
        m = re.fullmatch(r"manylinux_(\d+)_(\d+)_(.+)", plat)
        if not m:
            return False
        need, parch = (int(m.group(1)), int(m.group(2))), m.group(3)
    return parch == arch and target.glibc is not None and target.glibc >= need


def check_fits(wheels: list[Path], target: PythonTarget, origin: str) -> None:
    wrong = [w.name for w in wheels if not wheel_fits(w.name, target)]
    if wrong:
        raise MachineError(
            f"the wheels in {origin} do not fit the machine's {target.describe()}: "
            f"{', '.join(wrong[:5])}{' ...' if len(wrong) > 5 else ''}. Flock's targets are "
            "Debian-like systems with their python3 (3.11 on Debian 12); build a wheelhouse "
            f"for this one with `pip wheel flock -w DIR` on a machine with the same Python "
            f"and set {ENV_WHEELHOUSE}=DIR", step=STEP)


# --- the wheelhouse ---------------------------------------------------------------------------
def wheelhouse(cache_dir: Path, target: PythonTarget,
               progress: Callable[[str], None] | None = None) -> Wheelhouse:
    """The wheels that install Flock on `target`: FLOCK_WHEELHOUSE when set, else built
    (or reused) under `cache_dir`. MachineError (step "Preparing Flock's wheels") says
    what could not be built or does not fit the machine."""
    prepared = os.environ.get(ENV_WHEELHOUSE, "").strip()
    if prepared:
        return _prepared(Path(prepared).expanduser(), target)
    base = Path(cache_dir) / "wheelhouse"
    base.mkdir(parents=True, exist_ok=True)
    with _locked(base / f"{target.tag}.lock"):
        deps = _dependencies(base / target.tag, target, progress)
        own = _flock_wheel(base / "flock", progress)
    wheels = tuple(sorted(deps)) + (own,)
    check_fits(list(wheels), target, str(base))
    return Wheelhouse(wheels, own)


def _prepared(folder: Path, target: PythonTarget) -> Wheelhouse:
    wheels = sorted(folder.glob("*.whl")) if folder.is_dir() else []
    own = [w for w in wheels if w.name.lower().startswith("flock-")]
    if not own:
        raise MachineError(f"{ENV_WHEELHOUSE}={folder} holds no flock-*.whl: make one with "
                           f"`pip wheel flock -w {folder}` (or unset {ENV_WHEELHOUSE} to "
                           "build from this checkout)", step=STEP)
    check_fits(wheels, target, f"{ENV_WHEELHOUSE}={folder}")
    return Wheelhouse(tuple(wheels), max(own, key=lambda p: p.stat().st_mtime))


class _locked:
    """One builder per cache folder: threads of a parallel create and other processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        _thread_lock.acquire()
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)
        _thread_lock.release()


def _source_root() -> Path:
    pyproject = SOURCE / "pyproject.toml"
    try:
        name = tomllib.loads(pyproject.read_text())["project"]["name"]
    except (OSError, ValueError, KeyError):
        name = ""
    if name != "flock":
        raise MachineError(
            f"Flock is not running from a source checkout ({pyproject} is missing), so its "
            f"wheel cannot be built here: set {ENV_WHEELHOUSE} to a folder made with "
            "`pip wheel flock -w DIR`", step=STEP)
    return SOURCE


def requirements(source: Path | None = None) -> list[str]:
    """Flock's runtime dependencies, as pyproject.toml declares them."""
    data = tomllib.loads(((source or _source_root()) / "pyproject.toml").read_text())
    return list(data["project"].get("dependencies", []))


def _dependencies(folder: Path, target: PythonTarget,
                  progress: Callable[[str], None] | None) -> list[Path]:
    reqs = requirements()
    stamp_path = folder / "stamp.json"
    stamp = {"requirements": reqs, "target": target.tag}
    try:
        old = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("stamp") == stamp and all((folder / n).is_file() for n in old.get("files", [])):
        wheels = [folder / n for n in old["files"]]
        if all(wheel_fits(w.name, target) for w in wheels):
            return wheels
    if progress:
        progress(f"{STEP}: dependencies for {target.describe()} (once per store)")
    tmp = Path(tempfile.mkdtemp(prefix=".deps-", dir=folder.parent))
    try:
        req_file = tmp / "requirements.txt"
        req_file.write_text("\n".join(reqs) + "\n")
        out = tmp / "wheels"
        _pip(_dependency_command(target, req_file, out), "get the wheels of Flock's "
             f"dependencies for {target.describe()}")
        wheels = sorted(out.glob("*.whl"))
        check_fits(wheels, target, "the dependency wheels pip made")
        if folder.exists():
            shutil.rmtree(folder)
        out.rename(folder)
        names = [w.name for w in wheels]
        (folder / "stamp.json").write_text(json.dumps({"stamp": stamp, "files": names}))
        return [folder / n for n in names]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _dependency_command(target: PythonTarget, req_file: Path, out: Path) -> list[str]:
    local = PythonTarget.local()
    base = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    if (local.version, local.machine) == (target.version, target.machine) and \
            (target.glibc or (0, 0)) >= (local.glibc or (0, 0)):
        # This very interpreter can build anything that is only an sdist.
        return [*base, "wheel", "--prefer-binary", "-w", str(out), "-r", str(req_file)]
    major, minor = target.version
    cmd = [*base, "download", "--only-binary=:all:", "-d", str(out), "-r", str(req_file),
           "--python-version", f"{major}.{minor}", "--implementation", "cp",
           "--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none"]
    top = target.glibc[1] if target.glibc and target.glibc[0] == 2 else 17
    for glibc_minor in range(top, 16, -1):
        cmd += ["--platform", f"manylinux_2_{glibc_minor}_{target.machine}"]
    return cmd + ["--platform", f"manylinux2014_{target.machine}"]


def _pip(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MachineError(f"cannot {what}: {exc}", step=STEP) from None
    if done.returncode != 0:
        tail = "\n".join((done.stderr + done.stdout).strip().splitlines()[-12:])
        raise MachineError(
            f"cannot {what} (pip exited with {done.returncode}):\n{tail}\nThis needs PyPI "
            f"(or a pip index set in pip.conf) from here; or set {ENV_WHEELHOUSE} to a "
            "prepared folder of wheels", step=STEP)


# --- Flock's own wheel ------------------------------------------------------------------------
def _package_folders(source: Path) -> list[str]:
    """The folders pyproject.toml maps into the `flock` package (its package-dir)."""
    data = tomllib.loads((source / "pyproject.toml").read_text())
    mapped = data.get("tool", {}).get("setuptools", {}).get("package-dir", {})
    return sorted(set(mapped.values())) or ["flock"]


def source_files(source: Path) -> list[Path]:
    """The files a wheel is built from: the top-level build files and the packages."""
    folders = _package_folders(source)
    files = [source / n for n in TOP_FILES if (source / n).is_file()]
    for top in sorted(source.iterdir()):
        if not top.is_dir() or top.name not in folders:
            continue
        if not (top / "__init__.py").exists():
            continue
        for path in sorted(top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path)
    return files


def _revision(source: Path) -> str:
    if not (source / ".git").exists():
        return ""
    try:
        done = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def source_digest(source: Path) -> str:
    digest = hashlib.sha256(_revision(source).encode())
    for path in source_files(source):
        digest.update(str(path.relative_to(source)).encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _flock_wheel(folder: Path, progress: Callable[[str], None] | None) -> Path:
    source = _source_root()
    key = source_digest(source)
    done = folder / key
    found = sorted(done.glob("flock-*.whl")) if done.is_dir() else []
    if found:
        return found[0]
    if progress:
        progress(f"{STEP}: building Flock's wheel from {source}")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
    try:
        copy = tmp / "src"
        for path in source_files(source):
            target = copy / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        if (source / ".git").exists():
            (copy / ".git").symlink_to(source / ".git")   # setup.py stamps the revision
        # Without setuptools here, pip fetches it into an isolated build environment.
        no_isolation = ["--no-build-isolation"] if _has_setuptools() else []
        _pip([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel",
              "--no-deps", *no_isolation, "-w", str(tmp / "out"), str(copy)],
             f"build Flock's wheel from {source}")
        wheels = sorted((tmp / "out").glob("flock-*.whl"))
        if not wheels:
            raise MachineError(f"building Flock's wheel from {source} made no wheel",
                               step=STEP)
        (tmp / "out").rename(done)
        builds = sorted((p for p in folder.iterdir() if p.is_dir() and p.name[0] != "."),
                        key=lambda p: p.stat().st_mtime, reverse=True)
        for old in builds[KEEP_BUILDS:]:   # another thread may still upload a recent one
            shutil.rmtree(old, ignore_errors=True)
        return done / wheels[0].name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _has_setuptools() -> bool:
    import importlib.util

    return importlib.util.find_spec("setuptools") is not None
