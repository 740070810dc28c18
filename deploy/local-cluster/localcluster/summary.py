"""What `up` prints at the end (and `status` at any time): what runs where, and the
DOCKER_HOST line to paste."""

from __future__ import annotations

import ssl
from typing import TextIO

from flock.common.table import format_table
from localcluster import procs
from localcluster.layout import Layout, default_state_dir
from localcluster.view import manager_view


def _pid(layout: Layout, role: str, label: str) -> str:
    for proc in layout.procs:
        if proc.role == role and proc.label == label:
            return str(proc.pid) if procs.alive(proc) else f"{proc.pid} (gone)"
    return "-"


def tables(layout: Layout, tls: ssl.SSLContext | None) -> str:
    hosts = format_table(
        ["HOST", "NETNS", "IP", "DOCKERD PID", "AGENT PID", "ENGINE SOCKET"],
        [[layout.host(i), layout.netns(i), layout.host_ip(i),
          _pid(layout, "dockerd", layout.host(i)), _pid(layout, "agent", layout.host(i)),
          f"unix://{layout.docker_socket(i)}"] for i in layout.indexes])
    rows = [["etcd", f"{layout.bridge_ip}:{layout.etcd_port}", _pid(layout, "etcd", "etcd"),
             layout.discovery]]
    for label, addr in layout.managers:
        view = manager_view(addr, tls)
        role = view.role if view is not None and view.role else "not answering"
        rows.append([label, addr, _pid(layout, "manager", label), role])
    services = format_table(["ON THIS MACHINE", "ADDRESS", "PID", "ROLE"], rows)
    return f"{hosts}\n\n{services}"


def env_line(layout: Layout, addr: str) -> str:
    if layout.tls:
        return (f"export DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={layout.pki / 'client'} "
                f"DOCKER_HOST=tcp://{addr}")
    return f"export DOCKER_HOST=tcp://{addr}"


def down_command(layout: Layout) -> str:
    extra = "" if layout.state_dir == default_state_dir(layout.name) \
        else f" --state-dir {layout.state_dir}"
    return f"deploy/local-cluster/down.sh --name {layout.name}{extra}"


def print_summary(layout: Layout, tls: ssl.SSLContext | None, out: TextIO) -> None:
    (_, primary), (_, replica) = layout.managers
    lines = [
        "",
        f"local cluster {layout.name!r} is up: 3 hosts on bridge {layout.bridge} "
        f"({layout.subnet}), 2 managers, etcd",
        "",
        tables(layout, tls),
        "",
        f"logs:    {layout.logs}",
        f"stop:    {down_command(layout)}",
        f"replica: tcp://{replica} (answers reads itself, forwards writes to the primary)",
        f"DOCKER_HOST=tcp://{primary}",
        env_line(layout, primary),
    ]
    from localcluster.checks import docker_cli_hint

    if docker_cli_hint():
        lines.insert(-2, docker_cli_hint())
    print("\n".join(lines), file=out, flush=True)
