"""The machine as provisioning sees it: who we are there (root, or a user with
password-less sudo), which OS it runs, its Python and packages, and how files get there.

Every command runs through `sh -c` (whatever the user's login shell is) and, for a user
other than root, through `sudo -n`. Files are uploaded over SFTP into a private staging
folder first and then installed in place with their modes by one (sudo) command, so the
same path works for root and for the `admin`/`ubuntu` users of cloud images.
"""

from __future__ import annotations

import hashlib
import posixpath
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from flock.provisioner.bundle import PROBE, PythonTarget, Wheelhouse
from flock.provisioner.errors import MachineError
from flock.provisioner.provisioning.layout import Layout
from flock.provisioner.ssh import Connection, Result

OS_STEP = "Detecting the operating system"
PYTHON_STEP = "Installing Python"
DOCKER_STEP = "Installing the Docker Engine"
INSTALL_STEP = "Installing Flock"
FILES_STEP = "Writing certificates and configuration"
SYSTEM_PYTHON = "/usr/bin/python3"   # the distribution's, which apt's python3-venv serves
DEBIAN_LIKE = ("debian", "ubuntu", "raspbian", "linuxmint", "pop", "devuan", "kali")
APT = ("DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "
       "-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold")


@dataclass(frozen=True)
class OSInfo:
    id: str
    like: tuple[str, ...]
    version: str
    pretty: str


class Target:
    """One provisioning session on one machine; `deadline` (monotonic) bounds every
    command, so a hung apt-get or pip cannot outlast --provision-timeout."""

    def __init__(self, conn: Connection, deadline: float) -> None:
        self.conn = conn
        self.deadline = deadline
        self.root = True
        self.systemd = False

    @property
    def host(self) -> str:
        return self.conn.details.host

    def remaining(self, step: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise MachineError(f"provisioning {self.host} took longer than --provision-timeout "
                               "allows; allow more time with --provision-timeout", step=step)
        return left

    def wrap(self, command: str) -> str:
        shell = f"sh -c {shlex.quote(command)}"
        return shell if self.root else f"sudo -n {shell}"

    def run(self, command: str, step: str, *, check: bool = True, what: str = "",
            input: bytes | None = None) -> Result:
        """`command` as root on the machine; MachineError naming `step` when it fails."""
        timeout = self.remaining(step)
        try:
            result = self.conn.run(self.wrap(command), input=input, timeout=timeout)
        except MachineError as exc:
            raise MachineError(str(exc), step=step) from None
        if check and result.exit_code != 0:
            label = what or f"`{' '.join(command.split())[:120]}`"
            raise MachineError(f"{label} failed on {self.host} (exit code "
                               f"{result.exit_code}):\n{result.tail()}", step=step)
        return result

    # --- who and what ------------------------------------------------------------------------
    def probe_user(self) -> None:
        """Root, or a user with password-less sudo (MachineError otherwise); and whether
        the machine runs systemd."""
        user = self.conn.details.user
        uid = self.conn.run("id -u", timeout=self.remaining(OS_STEP)).text.strip()
        self.root = uid.splitlines()[-1:] == ["0"] if uid else False
        if not self.root:
            check = self.conn.run("sudo -n true", timeout=self.remaining(OS_STEP))
            if check.exit_code != 0:
                raise MachineError(
                    f"{user}@{self.host} is not root and cannot use sudo without a password "
                    f"({check.tail(3) or 'sudo -n true failed'}): log in as root, or let "
                    f"{user} run sudo without a password", step=OS_STEP)
        has = self.run("test -d /run/systemd/system && command -v systemctl", OS_STEP,
                       check=False)
        self.systemd = has.exit_code == 0

    def probe(self) -> OSInfo:
        """probe_user(), and the OS; MachineError for one Flock cannot provision."""
        self.probe_user()
        release = self.run("cat /etc/os-release || cat /usr/lib/os-release", OS_STEP,
                           check=False)
        info = parse_os_release(release.text)
        if release.exit_code != 0 or not info.id:
            raise MachineError(f"cannot read /etc/os-release on {self.host}: Flock provisions "
                               "Linux systems that have one (Debian, Ubuntu and their "
                               "derivatives)", step=OS_STEP)
        if not supported(info):
            raise MachineError(
                f"{self.host} runs {info.pretty or info.id}, which Flock cannot provision: it "
                "installs Docker and Python with apt on Debian-like systems (Debian, Ubuntu "
                "and their derivatives). Use one of those, or install Flock there by hand "
                "(deploy/systemd) and add the machine with `-d none --url`", step=OS_STEP)
        return info

    def apt_install(self, packages: list[str], step: str) -> None:
        """Install distribution packages, refreshing the package lists only when the
        install fails without (fresh cloud images often have none)."""
        names = " ".join(shlex.quote(p) for p in packages)
        first = self.run(f"{APT} install -y --no-install-recommends {names}", step, check=False)
        if first.exit_code == 0:
            return
        self.run(f"{APT} update && {APT} install -y --no-install-recommends {names}", step,
                 what=f"apt-get install {' '.join(packages)} (needs the distribution's "
                      "package mirror)")

    def ensure_python(self) -> PythonTarget:
        need = f"{SYSTEM_PYTHON} -c 'import venv, ensurepip'"
        if self.run(need, PYTHON_STEP, check=False).exit_code != 0:
            self.apt_install(["python3", "python3-venv"], PYTHON_STEP)
            self.run(need, PYTHON_STEP, what=f"{SYSTEM_PYTHON} with venv (after installing "
                                             "python3-venv)")
        out = self.run(f"{SYSTEM_PYTHON} -c {shlex.quote(PROBE)}", PYTHON_STEP)
        try:
            return PythonTarget.parse(out.text.strip().splitlines()[-1], SYSTEM_PYTHON)
        except (ValueError, KeyError, IndexError):
            raise MachineError(f"cannot read {SYSTEM_PYTHON}'s version on {self.host}: "
                               f"{out.tail(3)}", step=PYTHON_STEP) from None

    def ensure_dockerd(self, progress) -> str:
        """The path of the distribution's dockerd, installed (docker.io) when missing. With
        systemd, the distribution's own docker.service is disabled: Flock's engine unit
        replaces it (two engines on one host fight over the docker0 bridge)."""
        find = "command -v dockerd || ls /usr/sbin/dockerd /usr/bin/dockerd 2>/dev/null"
        found = self.run(find, DOCKER_STEP, check=False).text.strip().splitlines()
        if not found:
            progress(f"{DOCKER_STEP} (apt-get install docker.io)")
            self.apt_install(["docker.io"], DOCKER_STEP)
            found = self.run(find, DOCKER_STEP, what="finding dockerd after installing "
                             "docker.io").text.strip().splitlines()
        if self.systemd:
            active = self.run("systemctl is-enabled docker.service docker.socket; systemctl "
                              "is-active docker.service", DOCKER_STEP, check=False).text
            if "enabled" in active.split() or "active" in active.split():
                progress("Disabling the distribution's docker.service: Flock's engine "
                         "takes its place")
                self.run("systemctl disable --now docker.socket docker.service", DOCKER_STEP,
                         check=False)
        return found[-1].strip()

    # --- files ---------------------------------------------------------------------------------
    def install_files(self, files: dict[str, tuple[bytes, int]], step: str) -> None:
        """Put each file in place with its mode (parents made), via a private staging
        folder. Keys are absolute paths on the machine."""
        if not files:
            return
        stage = self.conn.run("mktemp -d /tmp/flock-stage.XXXXXXXX",
                              timeout=self.remaining(step)).text.strip().splitlines()[-1]
        try:
            script = []
            for i, (path, (data, mode)) in enumerate(sorted(files.items())):
                staged = f"{stage}/{i}"
                self.conn.put_bytes(data, staged, 0o600)
                script.append(f"install -D -m {mode:04o} {staged} {shlex.quote(path)}")
            self.run(" && ".join(script), step, what="installing the configuration files")
        except OSError as exc:
            raise MachineError(f"cannot upload files to {self.host}: {exc}", step=step) from None
        finally:
            self.conn.run(f"rm -rf {shlex.quote(stage)}", timeout=30)

    def upload_wheels(self, wheels: Wheelhouse, layout: Layout, progress) -> str:
        """The wheelhouse on the machine (files already there with the same content are
        not sent again, others removed); returns its folder."""
        folder = layout.wheelhouse if self.root else ".flock-wheelhouse"
        if self.root:
            self.run(f"mkdir -p {shlex.quote(folder)}", INSTALL_STEP)
        else:
            self.conn.run(f"mkdir -p {folder}", timeout=self.remaining(INSTALL_STEP))
        listing = self.conn.run(f"cd {shlex.quote(folder)} && rm -f .*.part; for f in *; do "
                                "[ -f \"$f\" ] && sha256sum \"$f\"; done; true",
                                timeout=self.remaining(INSTALL_STEP)).text
        present = {}
        for line in listing.splitlines():
            digest, _, name = line.partition("  ")
            if len(digest) == 64 and name:
                present[name] = digest
        try:
            wanted = {w.name: w for w in wheels.wheels}
            todo = [w for n, w in wanted.items() if present.get(n) != _sha256(w)]
            if todo:
                size = sum(w.stat().st_size for w in todo) / 1e6
                progress(f"{INSTALL_STEP}: uploading {len(todo)} wheels ({size:.1f} MB)")
            for wheel in todo:
                self.remaining(INSTALL_STEP)
                self.conn.sftp.put(str(wheel), f"{folder}/.{wheel.name}.part")
                self.conn.sftp.posix_rename(f"{folder}/.{wheel.name}.part",
                                            f"{folder}/{wheel.name}")
            for stale in set(present) - set(wanted):
                self.conn.sftp.remove(f"{folder}/{stale}")
        except OSError as exc:
            raise MachineError(f"cannot upload Flock's wheels to {self.host}:{folder}: {exc}",
                               step=INSTALL_STEP) from None
        if not self.root:
            home = self.conn.run("pwd", timeout=30).text.strip().splitlines()[-1]
            folder = posixpath.join(home, folder)
        return folder

    def install_flock(self, wheels: Wheelhouse, layout: Layout, python: PythonTarget,
                      folder: str) -> None:
        """A venv under install_dir (made again when its Python changed) with Flock from
        the wheelhouse, offline; Flock itself is always reinstalled."""
        venv_python = posixpath.join(layout.venv, "bin", "python")
        version = f"{python.version[0]}.{python.version[1]}"
        check = (f"{venv_python} -c 'import sys; sys.exit(sys.version_info[:2] != "
                 f"{tuple(python.version)!r})'")
        if self.run(check, INSTALL_STEP, check=False).exit_code != 0:
            self.run(f"rm -rf {shlex.quote(layout.venv)} && {python.path} -m venv "
                     f"{shlex.quote(layout.venv)}", INSTALL_STEP,
                     what=f"creating a Python {version} venv in {layout.venv}")
        wheel = shlex.quote(posixpath.join(folder, Path(wheels.flock_wheel).name))
        pip = (f"{shlex.quote(venv_python)} -m pip --disable-pip-version-check "
               f"--no-input install --no-index --find-links {shlex.quote(folder)}")
        self.run(f"{pip} {wheel} && {pip} --no-deps --force-reinstall {wheel}", INSTALL_STEP,
                 what=f"pip install of Flock from the uploaded wheelhouse (Python {version})")
        self.run(f"{shlex.quote(layout.flock)} --version", INSTALL_STEP,
                 what="running the installed flock")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def supported(info: OSInfo) -> bool:
    """Debian-like: Flock installs its packages with apt-get."""
    return info.id in DEBIAN_LIKE or any(x in DEBIAN_LIKE for x in info.like)


def parse_os_release(text: str) -> OSInfo:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.replace("_", "").isalnum():
            try:
                words = shlex.split(value)
            except ValueError:
                words = [value.strip("\"'")]
            values[key] = " ".join(words)
    return OSInfo(values.get("ID", "").lower(), tuple(values.get("ID_LIKE", "").lower().split()),
                  values.get("VERSION_ID", ""), values.get("PRETTY_NAME", ""))
