"""The systemd units of the manager and the agent, and the one way to write them.

The .service files next to this module are complete units for the default layout
(`/opt/flock` for the venv and state, `/etc/flock` for the environment files and certs),
so that `systemd-analyze verify` can check them as they ship. `render()` moves them to
another layout: `flock machine` provisioning installs Flock under the machine's
install_dir and calls render() so that hand-installed and provisioned machines run the
very same units.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import PurePosixPath

DEFAULT_INSTALL_DIR = "/opt/flock"
DEFAULT_ETC_DIR = "/etc/flock"
UNITS = ("flock-manager.service", "flock-agent.service")

# A default path as a whole path component: /opt/flock or /opt/flock/..., not /opt/flockx.
_DEFAULTS = re.compile(r"(?<![\w./-])(/opt/flock|/etc/flock)(?![\w.-])")
# Characters that systemd reads specially in unit files (specifiers, variables, quoting,
# escapes, line continuation) or that would split a path into two words.
_UNSAFE = re.compile(r"[\s%$\\'\";]")


def unit_name(unit: str) -> str:
    """`flock-manager.service` from `flock-manager.service`, `flock-manager` or
    `manager`; ValueError naming the known units otherwise."""
    for name in UNITS:
        if unit in (name, name.removesuffix(".service"),
                    name.removesuffix(".service").removeprefix("flock-")):
            return name
    raise ValueError(f"unknown unit {unit!r}: expected one of {', '.join(UNITS)}")


def unit_text(unit: str) -> str:
    """The shipped unit file (default layout) as text."""
    return resources.files(__name__).joinpath(unit_name(unit)).read_text(encoding="utf-8")


def _check_dir(flag: str, value: str) -> str:
    if not value or not value.startswith("/"):
        raise ValueError(f"{flag} must be an absolute path, got {value!r}")
    if _UNSAFE.search(value):
        raise ValueError(f"{flag} {value!r} contains a space or one of % $ \\ ' \" ;, which "
                         "systemd would read specially: choose a plain path")
    normal = str(PurePosixPath(value))
    if normal == "/" or ".." in PurePosixPath(value).parts:
        raise ValueError(f"{flag} {value!r} must be a folder of its own below / "
                         "without '..'")
    return normal


def render(unit: str, install_dir: str = DEFAULT_INSTALL_DIR,
           etc_dir: str = DEFAULT_ETC_DIR) -> str:
    """The unit `unit` with Flock installed in `install_dir` (its venv at
    install_dir/venv, the agent's state and sockets at install_dir/state and /run) and its
    configuration in `etc_dir` (etc_dir/manager.env, etc_dir/agent.env, and the default
    TLS files etc_dir/certs/{ca,cert,key}.pem, which the env file may point
    elsewhere). ValueError for an unknown unit or a path systemd cannot take."""
    install = _check_dir("install_dir", install_dir)
    etc = _check_dir("etc_dir", etc_dir)
    paths = {DEFAULT_INSTALL_DIR: install, DEFAULT_ETC_DIR: etc}
    return _DEFAULTS.sub(lambda match: paths[match.group(1)], unit_text(unit))
