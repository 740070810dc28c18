"""What `up` needs before it touches anything, each failure saying how to get it."""

from __future__ import annotations

import os
import shutil
import socket
import sys

from localcluster import ClusterError

# program -> the Debian package that has it
PROGRAMS = {
    "ip": "iproute2",
    "dockerd": "docker.io",
    "containerd": "containerd (a dependency of docker.io)",
    "etcd": "etcd-server",
    "busybox": "busybox-static",
    "umount": "mount",
    "nsenter": "util-linux",
}


def require_root(script: str = "up.sh") -> None:
    if os.geteuid() != 0:
        raise ClusterError("the local cluster needs root (network namespaces, a bridge, "
                           f"dockerd): run it as root, e.g. `sudo deploy/local-cluster/{script}`")


def require_programs() -> None:
    missing = [(name, package) for name, package in PROGRAMS.items()
               if shutil.which(name) is None]
    if missing:
        names = ", ".join(name for name, _ in missing)
        packages = sorted({package.split(" ")[0] for _, package in missing})
        raise ClusterError(f"missing program(s): {names}; install them with "
                           f"`apt-get install {' '.join(packages)}` (Debian/Ubuntu), then "
                           "run this again")


def require_flock() -> None:
    """Flock must import in this Python: the agents and managers run with it."""
    try:
        import flock.agent.cli  # noqa: F401
        import flock.busybox  # noqa: F401
        import flock.manager.cli  # noqa: F401
    except ImportError as exc:
        raise ClusterError(f"Flock cannot be imported by {sys.executable} ({exc}): run "
                           "`bash scripts/quickstart.sh` (or `.venv/bin/pip install -e .`) in "
                           "the checkout first, or set FLOCK_PYTHON to a Python that has "
                           "Flock installed") from None


def docker_cli_hint() -> str:
    """A line for the summary when the docker CLI, which users drive the cluster with,
    is missing (the cluster itself does not need it)."""
    if shutil.which("docker") is None:
        return "note: no `docker` CLI here; install docker.io (or docker-ce-cli) to use it"
    return ""


def require_port(host: str, port: int, flag: str) -> None:
    """Nothing listens on HOST:PORT yet (a wildcard listener would take our connections)."""
    with socket.socket() as sock:
        # as the listeners do: connections in TIME_WAIT from an earlier run do not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ClusterError(f"port {port} on {host} is taken ({exc.strerror}): another "
                               f"program listens there (`ss -ltnp | grep :{port}`); pick "
                               f"another one with {flag}") from None
