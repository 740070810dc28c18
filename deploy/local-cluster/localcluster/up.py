"""`up`: bring up the three-host cluster, one step per line.

On this machine: a bridge, etcd on the bridge's address, two managers with
`--replication` (A first, so it becomes the primary; B is the replica). In each of three
network namespaces: a dockerd of its own (data, exec root, socket and pidfile under the
state folder, no iptables, its own docker0 inside the namespace) and `flock join` with
the docker runtime, advertising the namespace's address. Then busybox is imported
through the manager, which puts it on every node.

When a step fails, what was made is removed again (the logs are kept) unless
--keep-on-failure asks to leave it for a look.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from localcluster import ClusterError, UsageError, checks, net, probe, procs
from localcluster.down import down
from localcluster.layout import AGENT_PORT, Layout
from localcluster.progress import Progress
from localcluster.summary import down_command, print_summary
from localcluster.view import manager_view

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Options:
    name: str
    state_dir: Path
    subnet: str | None = None
    etcd_port: int = 2379
    manager_port: int = 2375
    tls: bool = False
    keep_on_failure: bool = False
    timeout: float = 120  # for each wait


def up(options: Options, out: TextIO | None = None) -> Layout:
    """Bring the cluster up and print where it is; ClusterError says what went wrong."""
    layout = Layout(name=options.name, state_dir=options.state_dir,
                    etcd_port=options.etcd_port, manager_port=options.manager_port,
                    tls=options.tls)
    layout.check_paths()
    for flag, port in (("--etcd-port", options.etcd_port),
                       ("--manager-port", options.manager_port)):
        if not 1024 <= port <= 65534:
            raise UsageError(f"invalid {flag} {port}: use a port from 1024 to 65534 (it and "
                             "the next one are used)")
    if abs(options.etcd_port - options.manager_port) < 2:
        raise UsageError("--etcd-port and --manager-port overlap: each uses two ports")
    progress = Progress(9 if options.tls else 8, out)
    progress.say(f"local cluster {layout.name!r}, state in {layout.state_dir}")
    with progress.step("checking root, programs and Flock"):
        checks.require_root()
        layout.check_state_dir()
        checks.require_programs()
        checks.require_flock()
    starter = Starter(layout, progress, options.timeout)
    made = False
    try:
        with progress.step(f"network: a bridge, namespaces {layout.netns(1)}.."
                           f"{len(layout.indexes)}"):
            # Under the lock, so that two `up`s of one name cannot both find it free.
            with net.names_lock():
                _refuse_existing(layout)
                subnet = net.check_subnet(options.subnet) if options.subnet \
                    else net.pick_subnet(layout.name)
                layout.subnet = str(subnet)
                made = True
                starter.make_network()
            progress.note = f"bridge {layout.bridge} {layout.bridge_ip}/{layout.prefixlen}"
        starter.run()
    except BaseException as exc:
        if made:
            _after_failure(layout, progress, options.keep_on_failure, exc)
        raise
    print_summary(layout, starter.tls_context, progress.out)
    return layout


def _after_failure(layout: Layout, progress: Progress, keep: bool, exc: BaseException) -> None:
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    if keep:
        progress.say(f"{reason}: left as it is (--keep-on-failure); look at "
                     f"{layout.logs}, then remove it with {down_command(layout)}")
        return
    progress.say(f"{reason}: removing what was made (the logs stay in {layout.logs})")
    try:
        down(layout, keep_logs=True, out=progress.out)
    except Exception as cleanup:  # noqa: BLE001 - report the first error
        progress.say(f"cleaning up failed too: {cleanup}; run {down_command(layout)}")


def _refuse_existing(layout: Layout) -> None:
    if layout.recorded:
        recorded = Layout.load(layout.name, layout.state_dir)
        running = [p for p in recorded.procs if procs.alive(p)]
        state = "is already up" if running else "was left half made"
        raise ClusterError(f"a cluster named {layout.name!r} {state} ({layout.state_file}): "
                           f"remove it with {down_command(layout)}, or pick another --name")
    found = net.leftovers(layout)
    if found:
        raise ClusterError(f"the network of a cluster named {layout.name!r} is still there "
                           f"({', '.join(found)}): remove it with {down_command(layout)}, or "
                           "pick another --name")


class Starter:
    """The steps after the checks; every process is recorded as soon as it starts."""

    def __init__(self, layout: Layout, progress: Progress, timeout: float) -> None:
        self.layout = layout
        self.progress = progress
        self.timeout = timeout
        self.watch: list[tuple[str, subprocess.Popen, str]] = []
        self.tls_context = None
        self.env = {"PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
            "PYTHONUNBUFFERED": "1"}

    def make_network(self) -> None:
        layout = self.layout
        layout.state_dir.mkdir(parents=True, exist_ok=True)
        layout.logs.mkdir(exist_ok=True)
        layout.save()  # the subnet is recorded before anything exists
        net.create(layout)

    def run(self) -> None:
        """The steps after the network."""
        layout, step = self.layout, self.progress.step
        if layout.tls:
            with step(f"TLS certificates in {layout.pki}"):
                self.make_certs()
        with step(f"etcd on {layout.bridge_ip}:{layout.etcd_port}"):
            self.start_etcd()
        with step("a dockerd in each namespace"):
            self.start_engines()
        with step(f"an agent in each namespace (port {AGENT_PORT})"):
            self.start_agents()
        with step(f"managers {layout.managers[0][1]} and {layout.managers[1][1]}"):
            self.start_managers()
        with step("3 healthy nodes seen by both managers, a primary and a replica"):
            self.wait_for_cluster()
        with step("busybox imported through the manager on every node"):
            self.import_busybox()

    def _spawn(self, role: str, label: str, cmd: list[str], netns: str = "",
               addr: str = "", python: bool = False) -> subprocess.Popen:
        log = self.layout.logs / f"{label if label.startswith(role) else role + '-' + label}.log"
        if python:
            cmd = [sys.executable, "-m", "flock", *cmd]
        proc, popen = procs.spawn(role, label, cmd, log, netns=netns,
                                  env=self.env if python else None, addr=addr)
        self.layout.add(proc)
        self.watch.append((f"{role} {label}", popen, str(log)))
        return popen

    def _wait(self, check, what: str, hint: str = "") -> object:
        return probe.wait(check, self.timeout, what, self.watch, hint)

    # ------------------------------------------------------------------ steps
    def make_certs(self) -> None:
        layout = self.layout
        ips = [layout.bridge_ip, *map(layout.host_ip, layout.indexes)]
        cmd = [sys.executable, "-m", "flock", "certs", "init", str(layout.pki)]
        for address in ips:
            cmd += ["--ip", address]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                env={**os.environ, **self.env})
        if result.returncode != 0:
            raise ClusterError(f"`flock certs init` failed: {result.stderr.strip()}")
        self.tls_context = probe.client_tls(layout.pki)

    def start_etcd(self) -> None:
        layout = self.layout
        ip = layout.bridge_ip
        checks.require_port(ip, layout.etcd_port, "--etcd-port")
        checks.require_port(ip, layout.etcd_peer_port, "--etcd-port")
        client = f"http://{ip}:{layout.etcd_port}"
        peer = f"http://{ip}:{layout.etcd_peer_port}"
        self._spawn("etcd", "etcd", [
            "etcd", "--name", layout.name, "--data-dir", str(layout.state_dir / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"{layout.name}={peer}",
            "--initial-cluster-state", "new"], addr=f"{ip}:{layout.etcd_port}")
        address = f"{ip}:{layout.etcd_port}"
        self._wait(lambda: (probe.get_json(address, "/health") or {}).get("health") == "true",
                   f"etcd to answer on {address}")

    def start_engines(self) -> None:
        layout = self.layout
        for index in layout.indexes:
            folder = layout.host_dir(index)
            folder.mkdir(parents=True, exist_ok=True)
            # Not this machine's /etc/docker/daemon.json, nor its key.json: that key is
            # the engine's ID, and each host's engine has an ID of its own.
            config = folder / "daemon.json"
            config.write_text(json.dumps({"deprecated-key-path": str(folder / "key.json")}))
            namespace = f"flc{layout.tag}h{index}"
            self._spawn("dockerd", layout.host(index), [
                "dockerd", "--config-file", str(config),
                "--data-root", str(folder / "docker"), "--exec-root", str(layout.exec_root(index)),
                "--pidfile", str(folder / "dockerd.pid"),
                "-H", f"unix://{layout.docker_socket(index)}",
                "--iptables=false", "--ip-masq=false",
                "--containerd-namespace", namespace,
                "--containerd-plugins-namespace", f"{namespace}p",
                "--label", f"flock.local-cluster={layout.name}",
            ], netns=layout.netns(index))
        for index in layout.indexes:
            socket_path = str(layout.docker_socket(index))
            self._wait(lambda s=socket_path: probe.get_json(s, "/version"),
                       f"the dockerd of {layout.host(index)} to answer on {socket_path}")
        self.progress.note = f"{len(layout.indexes)} engines"

    def _tls_flags(self, who: str) -> list[str]:
        if not self.layout.tls:
            return ["--insecure"]  # plaintext on the bridge: only this machine reaches it
        folder = self.layout.pki / who
        return ["--tlsverify", f"--tlscacert={folder / 'ca.pem'}",
                f"--tlscert={folder / 'cert.pem'}", f"--tlskey={folder / 'key.pem'}"]

    def start_agents(self) -> None:
        layout = self.layout
        for index in layout.indexes:
            advertise = f"{layout.host_ip(index)}:{AGENT_PORT}"
            self._spawn("agent", layout.host(index), [
                "join", layout.discovery, "--advertise", advertise, "--runtime", "docker",
                "--docker-host", f"unix://{layout.docker_socket(index)}",
                "--name", layout.host(index),
                "--state-dir", str(layout.host_dir(index) / "agent"),
                *self._tls_flags("agent")], netns=layout.netns(index), addr=advertise,
                python=True)

    def start_managers(self) -> None:
        for label, addr in self.layout.managers:
            host, _, port = addr.rpartition(":")
            checks.require_port(host, int(port), "--manager-port")
            self._spawn("manager", label, [
                "manage", self.layout.discovery, "-H", f"tcp://{addr}", "--replication",
                "--advertise", addr, "--heartbeat", "2s", *self._tls_flags("manager")],
                addr=addr, python=True)
            # A answers first, so that it wins the election: DOCKER_HOST points at it.
            self._wait(lambda a=addr: self._pinged(a), f"the manager on {addr} to answer")

    def _pinged(self, addr: str) -> bool:
        try:
            status, _ = probe.request(addr, "GET", "/_ping", tls=self.tls_context, timeout=5)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    def wait_for_cluster(self) -> None:
        (_, addr_a), (_, addr_b) = self.layout.managers
        hosts = [self.layout.host(i) for i in self.layout.indexes]

        def ready() -> bool:
            a = manager_view(addr_a, self.tls_context)
            b = manager_view(addr_b, self.tls_context)
            healthy = all(view and all(view.nodes.get(h) == "Healthy" for h in hosts)
                          for view in (a, b))
            return bool(healthy and a.role == "primary" and b.role == "replica"
                        and b.primary == addr_a)

        self._wait(ready, "both managers to see 3 healthy nodes and agree on the primary",
                   hint=f"look at the agents' and managers' logs in {self.layout.logs}")

    def import_busybox(self) -> None:
        from flock.busybox import busybox_rootfs_tar

        addr = self.layout.managers[0][1]
        status, body = probe.request(
            addr, "POST", "/images/create?fromSrc=-&repo=busybox&tag=latest",
            body=busybox_rootfs_tar(), timeout=self.timeout, tls=self.tls_context,
            headers={"Content-Type": "application/x-tar"})
        errors = [line for line in body.decode(errors="replace").splitlines()
                  if '"error"' in line]
        if status != 200 or errors:
            raise ClusterError(f"importing busybox through {addr} failed ({status}): "
                               f"{(errors or [body.decode(errors='replace')])[0][:500]}")
        for index in self.layout.indexes:
            socket_path = str(self.layout.docker_socket(index))
            images = probe.get_json(socket_path, "/images/json") or []
            tags = {tag for image in images for tag in image.get("RepoTags") or []}
            if "busybox:latest" not in tags:
                raise ClusterError(f"busybox:latest is not on {self.layout.host(index)}'s "
                                   f"engine after the import: {json.dumps(sorted(tags))}")
