"""`down`: remove everything `up` made, in the order that leaves nothing behind.

Containers first (through each engine, while it still answers), then the programs by
PID (managers, agents, engines, etcd), then whatever is still inside the namespaces
(with everything under it: container processes live below their shim), then mounts under
the state folder, the namespaces, the veths and the bridge, and the state folder. Every
step accepts that its part is missing, so `down` finishes a half-made cluster and can
run twice.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from typing import TextIO

from localcluster import ClusterError, net, probe, procs
from localcluster.layout import STATE_ROOT, Layout
from localcluster.progress import Progress


def remove_containers(socket_path: str) -> int:
    """Force-remove every container of one engine; returns how many went."""
    listing = probe.get_json(socket_path, "/containers/json?all=1", timeout=10)
    if not isinstance(listing, list):
        return 0
    removed = 0
    for container in listing:
        try:
            status, _ = probe.request(socket_path, "DELETE",
                                      f"/containers/{container['Id']}?force=1&v=1",
                                      timeout=30)
        except OSError:
            continue
        removed += status in (204, 404)
    return removed


def _remove_all_containers(layout: Layout) -> int:
    counts: list[int] = []
    sockets = [str(layout.docker_socket(i)) for i in layout.indexes
               if layout.docker_socket(i).exists()]
    threads = [threading.Thread(target=lambda s=path: counts.append(remove_containers(s)))
               for path in sockets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return sum(counts)


def _stop_role(layout: Layout, roles: tuple[str, ...], timeout: float) -> str:
    chosen = [p for p in layout.procs if p.role in roles]
    running = [p for p in chosen if procs.alive(p)]
    killed = procs.stop(running, timeout)
    note = f"{len(running)} stopped" if running else "none running"
    if killed:
        note += f", {len(killed)} killed after {timeout:.0f}s"
    return note


def down(layout: Layout, keep_logs: bool = False, out: TextIO | None = None) -> None:
    """Remove the cluster described by `layout` (a recorded one, or a bare one from the
    name and state folder)."""
    progress = Progress(8, out)
    if not layout.state_dir.exists() and not net.leftovers(layout):
        progress.say(f"nothing to remove: no cluster {layout.name!r} here (no "
                     f"{layout.state_dir}, no namespaces or bridge of that name)")
        return
    progress.say(f"removing local cluster {layout.name!r} (state in {layout.state_dir})")
    if not layout.recorded and net.leftovers(layout):
        progress.say(f"warning: no record ({layout.state_file}): processes in the namespaces "
                     "are found, but etcd and the managers on this machine cannot be; if "
                     f"they still run, find them with `ss -ltnp` and stop them")
    with progress.step("removing containers"):
        progress.note = f"{_remove_all_containers(layout)} removed"
    with progress.step("stopping managers and agents"):
        progress.note = _stop_role(layout, ("manager", "agent"), 15)
    with progress.step("stopping engines"):
        progress.note = _stop_role(layout, ("dockerd",), 30)
    with progress.step("stopping etcd"):
        progress.note = _stop_role(layout, ("etcd",), 15)
    with progress.step("stopping what is left in the namespaces"):
        present = net.namespaces()
        left: set[int] = set()
        for index in layout.indexes:
            if layout.netns(index) in present:
                left |= procs.netns_pids(layout.netns(index))
        left = procs.descendants(left) if left else set()
        cgroups = procs.cgroups_of(left)
        procs.kill(left)
        procs.remove_cgroups(cgroups)
        progress.note = f"{len(left)} killed" if left else "nothing left"
    with progress.step("unmounting what the engines left"):
        points = [point for index in layout.indexes  # the engines' folders only
                  for point in procs.unmount_under(layout.host_dir(index))]
        progress.note = f"{len(points)} unmounted" if points else "nothing mounted"
    with progress.step("removing namespaces, veths and the bridge"):
        removed = net.remove(layout)
        progress.note = ", ".join(removed) if removed else "none there"
    with progress.step("removing the state folder" if not keep_logs
                       else "removing the state folder but its logs"):
        _remove_state(layout, keep_logs)
        progress.note = f"logs kept in {layout.logs}" if keep_logs else str(layout.state_dir)


def _remove_state(layout: Layout, keep_logs: bool) -> None:
    if not layout.state_dir.exists():
        return
    mounted = [point for name in layout.own_entries()
               for point in procs.mounts_under(layout.state_dir / name)]
    if mounted:  # never delete through a mount into somebody else's files
        raise ClusterError(f"still mounted under {layout.state_dir}: {', '.join(mounted)}; "
                           "unmount them (`umount -l PATH`) and run down again")
    keep = {"logs"} if keep_logs else set()
    for entry in layout.state_dir.iterdir():
        if entry.name not in layout.own_entries() or entry.name in keep:
            continue  # only what up made goes, whatever --state-dir was given
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    with contextlib.suppress(OSError):
        layout.state_dir.rmdir()  # when nothing else is left in it
        if layout.state_dir.parent == STATE_ROOT:  # the default place: tidy up after us
            STATE_ROOT.rmdir()  # only when no other cluster's folder is there

