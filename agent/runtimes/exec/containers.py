"""Container lifecycle: records made by `create`, processes run by shims, and the watch
that turns exits into `die` events, wakes waiters, and applies --rm and restart
policies."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import secrets
import signal
from collections import defaultdict

from flock.agent.runtimes.exec import (
    container_mounts,
    endpoints,
    freezer,
    health,
    isolation,
    ports,
)
from flock.agent.runtimes.exec.errors import ApiError, bad_request, conflict, not_found
from flock.agent.runtimes.exec.events import EventBus
from flock.agent.runtimes.exec.images import ImageManager
from flock.agent.runtimes.exec.names import check_name, generate_name
from flock.agent.runtimes.exec.network import Network, mode_of
from flock.agent.runtimes.exec.signals import parse_signal
from flock.agent.runtimes.exec.store import ContainerRecord, ContainerStore
from flock.agent.runtimes.exec.supervisor import RunState, Supervisor
from flock.agent.runtimes.exec.timefmt import now_rfc
from flock.agent.runtimes.exec.unsupported import refuse_unsupported, refuse_unsupported_config
from flock.agent.runtimes.exec.volumes import VolumeManager

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MIN_MEMORY = 6 * 1024 * 1024
POLL = 0.2
WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
# dockerd 20.10 with runc 1.1 (Debian's docker.io); the docker CLI turns "no such file or
# directory" into exit code 127 and "permission denied" into 126 (cli/command/container/run.go)
START_FAILED = ("failed to create shim task: OCI runtime create failed: runc create failed: "
                "unable to start container process: {}: unknown")


class NotModified(Exception):
    """Start of a running or stop of a stopped container: the Engine answers 304."""


class Changes:
    """Wakes everybody waiting for a container to change (exit, removal)."""

    def __init__(self) -> None:
        self._future: asyncio.Future | None = None

    def notify(self) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(None)
        self._future = None

    async def wait(self, timeout: float = 1.0) -> None:
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._future), timeout)


def _as_list(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]  # type: ignore[union-attr]


def merge_env(*envs: list[str] | None) -> list[str]:
    merged: dict[str, str] = {}
    for env in envs:
        for item in env or []:
            merged[item.split("=", 1)[0]] = item
    if "PATH" not in merged:
        merged["PATH"] = DEFAULT_PATH
    return list(merged.values())


class ContainerManager:
    def __init__(self, store: ContainerStore, bus: EventBus, isolated: bool) -> None:
        self.store = store
        self.bus = bus
        self.isolated = isolated
        self.supervisor = Supervisor(store)
        self.records = store.load_all()
        self.images: ImageManager | None = None
        self.volumes: VolumeManager | None = None
        self.network: Network | None = None
        self.locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.changes = Changes()
        self.exits: dict[str, int] = defaultdict(int)
        self.final: dict[str, RunState] = {}  # the last state of removed containers
        self.watching = {cid for cid in self.records if store.run_state(cid) is not None}
        self.start_waiters: dict[str, list[asyncio.Future]] = defaultdict(list)
        self.launching: set[str] = set()

    # --- lookup ----------------------------------------------------------------------
    def find(self, ref: str) -> ContainerRecord | None:
        """By full id, by name (with or without /), or by unique id prefix."""
        if ref in self.records:
            return self.records[ref]
        name = ref.lstrip("/")
        for record in self.records.values():
            if record.name == name:
                return record
        found = [r for r in self.records.values() if r.id.startswith(ref)] if ref else []
        return found[0] if len(found) == 1 else None

    def get(self, ref: str) -> ContainerRecord:
        record = self.find(ref)
        if record is None:
            raise not_found(f"No such container: {ref}")
        return record

    def state(self, record: ContainerRecord) -> RunState:
        return self.supervisor.state(record.id)

    def paused(self, record: ContainerRecord) -> bool:
        return freezer.frozen(record.id) and self.state(record).running

    def rootfs_of(self, record: ContainerRecord) -> str:
        """The image's root folder (what a container without isolation runs in)."""
        assert self.images is not None
        image = self.images.find(record.image_id)
        if image is None:
            raise ApiError(500, f"the image of container {record.id[:12]} is gone")
        return str(self.images.rootfs(image))

    def volume_users(self, name: str) -> list[str]:
        return [r.id for r in self.records.values() if container_mounts.uses_volume(r, name)]

    def users_of(self, image_id: str) -> list[tuple[str, bool]]:
        return [(r.id, self.state(r).running) for r in self.records.values()
                if r.image_id == image_id]

    def _attributes(self, record: ContainerRecord, **extra: str) -> dict[str, str]:
        labels = record.config.get("Labels") or {}
        return {**labels, "image": record.image_ref, "name": record.name, **extra}

    def event(self, record: ContainerRecord, action: str, **extra: str) -> None:
        """Announce something done to the container outside this class (attach, exec)."""
        self._event(record, action, **extra)

    def _event(self, record: ContainerRecord, action: str, **extra: str) -> None:
        self.bus.emit("container", action, record.id, self._attributes(record, **extra),
                      image=record.image_ref)

    # --- create ----------------------------------------------------------------------
    def create(self, body: dict, name: str) -> tuple[str, list[str]]:
        assert self.images is not None
        if not isinstance(body, dict) or not body:
            raise bad_request("Config cannot be empty in order to create a container")
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise bad_request("no image given in the container config")
        image = self.images.get(image_ref)
        name = check_name(name) if name else generate_name({r.name for r in self.records.values()})
        owner = self.find_by_name(name)
        if owner is not None:
            raise conflict(f'Conflict. The container name "/{name}" is already in use by '
                           f'container "{owner.id}". You have to remove (or rename) that '
                           f"container to be able to reuse that name.")
        host_config = dict(body.get("HostConfig") or {})
        memory = int(host_config.get("Memory") or 0)
        if 0 < memory < MIN_MEMORY:
            raise bad_request("Minimum memory limit allowed is 6MB")
        host_config.setdefault("NetworkMode", "default")
        refuse_unsupported(host_config)
        refuse_unsupported_config(body)
        aliases = endpoints.aliases(body.get("NetworkingConfig"), mode_of(host_config))
        if not (host_config.get("LogConfig") or {}).get("Type"):  # the Engine's default
            host_config["LogConfig"] = {"Type": "json-file", "Config": {}}
        health.validate(body.get("Healthcheck"))
        cid = secrets.token_hex(32)
        config, argv = self._merged_config(body, image.config, cid)
        net_warnings = self._check_network(image.config, config, host_config)
        assert self.volumes is not None
        planned = container_mounts.plan(config, host_config, self.isolated, self.volumes,
                                        str(self.images.rootfs(image)),
                                        image.config.get("Volumes"))
        record = ContainerRecord(id=cid, name=name, created=now_rfc(), image_id=image.id,
                                 image_ref=image_ref, config=config, host_config=host_config,
                                 path=argv[0], args=argv[1:],
                                 extra={container_mounts.KEY: planned})
        if aliases:
            record.extra[endpoints.KEY] = aliases
        self.records[cid] = record
        self.store.save(record)
        self._event(record, "create")
        return cid, [*self._warnings(host_config), *net_warnings]

    def _check_network(self, image: dict, config: dict, host_config: dict) -> list[str]:
        """ExposedPorts merged with the image's, the network mode and port specs checked."""
        exposed = ports.merged_exposed(image, config)
        if exposed:
            config["ExposedPorts"] = exposed
        return self.network.check(config, host_config) if self.network is not None else []

    def find_by_name(self, name: str) -> ContainerRecord | None:
        return next((r for r in self.records.values() if r.name == name), None)

    def _merged_config(self, body: dict, image: dict, cid: str) -> tuple[dict, list[str]]:
        """The Engine's rules: the image's Cmd only when neither Cmd nor Entrypoint is
        given, its Entrypoint unless one is given; Env merged by key."""
        entrypoint = _as_list(body.get("Entrypoint"))
        cmd = _as_list(body.get("Cmd"))
        if not entrypoint:
            if not cmd:
                cmd = image.get("Cmd")
            if entrypoint is None:
                entrypoint = image.get("Entrypoint")
        argv = list(entrypoint or []) + list(cmd or [])
        if not argv:
            raise bad_request("No command specified")
        config = {**body}
        config.pop("HostConfig", None)
        config.pop("NetworkingConfig", None)
        config.update(
            Hostname=body.get("Hostname") or cid[:12], Domainname=body.get("Domainname", ""),
            User=body.get("User") or image.get("User") or "",
            Env=merge_env(image.get("Env"), body.get("Env")), Cmd=cmd,
            Entrypoint=entrypoint, Image=body["Image"],
            WorkingDir=body.get("WorkingDir") or image.get("WorkingDir") or "",
            Labels={**(image.get("Labels") or {}), **(body.get("Labels") or {})},
            Tty=bool(body.get("Tty")), OpenStdin=bool(body.get("OpenStdin")))
        for key in ("AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce"):
            config.setdefault(key, False)
        if image.get("StopSignal") and not body.get("StopSignal"):
            config["StopSignal"] = image["StopSignal"]
        checks = health.merge(body.get("Healthcheck"), image.get("Healthcheck"))
        if checks:
            config["Healthcheck"] = checks
        if image.get("Volumes") or body.get("Volumes"):
            config["Volumes"] = {**(image.get("Volumes") or {}), **(body.get("Volumes") or {})}
        return config, argv

    def _warnings(self, host_config: dict) -> list[str]:
        warnings = []
        if host_config.get("Memory") and not isolation.cgroup_available("memory"):
            warnings.append("Your kernel does not support memory limit capabilities or the "
                            "cgroup is not mounted. Limitation discarded.")
        return warnings

    # --- start -----------------------------------------------------------------------
    def _spec(self, record: ContainerRecord) -> dict:
        assert self.images is not None
        image = self.images.find(record.image_id)
        if image is None:
            raise ApiError(500, f"the image of container {record.id[:12]} is gone")
        config = record.config
        extra = [f"HOSTNAME={config['Hostname']}", "HOME=/root"]
        if config.get("Tty"):
            extra.append("TERM=xterm")
        return {"id": record.id, "argv": [record.path, *record.args],
                "env": merge_env(extra, config.get("Env")),
                "workdir": config.get("WorkingDir") or "/", "hostname": config["Hostname"],
                "user": config.get("User") or "", "tty": bool(config.get("Tty")),
                "isolated": self.isolated, "image_rootfs": self.images.rootfs(image),
                "container_dir": str(self.store.dir(record.id)),
                "cgroups": isolation.cgroup_settings(record.host_config),
                "open_stdin": bool(config.get("OpenStdin")),
                "stdin_once": bool(config.get("StdinOnce")),
                "console_size": record.host_config.get("ConsoleSize") or [0, 0],
                "mounts": container_mounts.for_shim(record, self.volumes),
                "readonly_root": bool(record.host_config.get("ReadonlyRootfs"))}

    async def start(self, ref: str) -> None:
        record = self.get(ref)
        async with self.locks[record.id]:
            await self._start(record)

    async def _start(self, record: ContainerRecord) -> None:
        if self.state(record).running:
            raise NotModified()
        spec = self._spec(record)
        if self.network is not None:
            spec.update(await self.network.attach(record))
        waiters = self.start_waiters.pop(record.id, [])
        spec["attach_hold"] = sum(1 for w in waiters if not w.done())
        self.launching.add(record.id)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(True)
        try:
            report = await asyncio.to_thread(self.supervisor.launch, record.id, spec)
        except BaseException:
            await self._detach(record)
            raise
        finally:
            self.launching.discard(record.id)
        if "error" in report:
            await self._detach(record)
            message = START_FAILED.format(report["error"])
            self._start_failed(record, message)
            raise bad_request(message)
        if self.network is not None:
            await self.network.started(record)
        record.manually_stopped = False
        self.store.save(record)
        self.watching.add(record.id)
        self._event(record, "start")

    def _start_failed(self, record: ContainerRecord, message: str) -> None:
        """The Engine keeps the whole message as State.Error and removes a --rm container
        whose process could not start: `docker run --rm` waits for that removal
        (wait?condition=removed) before it exits 127 or 126 (moby daemon/start.go,
        containerStart's deferred cleanup)."""
        exited = self.store.exit_state(record.id)
        if exited is not None:
            self.store.write_exit(record.id, {**exited, "Error": message})
        if record.host_config.get("AutoRemove"):
            self._destroy(record)
            container_mounts.drop_anonymous(record, self.volumes)

    async def _detach(self, record: ContainerRecord) -> None:
        if self.network is not None:
            await self.network.detach(record)

    # --- stop, kill, restart ---------------------------------------------------------
    def expect_start(self, cid: str) -> asyncio.Future:
        """Resolves with True when the container is being started (its shim then waits
        for this attach before running the command), False when it is removed."""
        waiter = asyncio.get_running_loop().create_future()
        self.start_waiters[cid].append(waiter)
        return waiter

    def forget_start(self, cid: str, waiter: asyncio.Future) -> None:
        waiters = self.start_waiters.get(cid, [])
        if waiter in waiters:
            waiters.remove(waiter)

    async def stop(self, ref: str, timeout: int | None) -> None:
        record = self.get(ref)
        async with self.locks[record.id]:
            if not self.state(record).running:
                raise NotModified()
            record.manually_stopped = True
            self.store.save(record)
            await self._stop(record, timeout)

    async def _stop(self, record: ContainerRecord, timeout: int | None) -> None:
        if timeout is None:
            timeout = int(record.config.get("StopTimeout") or 10)
        signum = parse_signal(record.config.get("StopSignal"), signal.SIGTERM)
        self._event(record, "kill", signal=str(signum))
        await asyncio.to_thread(freezer.thaw_quietly, record.id)
        self.supervisor.signal(record.id, signum)
        if not await self._wait_exit(record, None if timeout < 0 else timeout):
            self._event(record, "kill", signal=str(int(signal.SIGKILL)))
            self.supervisor.signal(record.id, signal.SIGKILL)
            await self._wait_exit(record, 30)
        self._exited(record)
        self._event(record, "stop")

    async def kill(self, ref: str, signum: int) -> None:
        record = self.get(ref)
        async with self.locks[record.id]:
            if not self.state(record).running:
                raise conflict(f"Cannot kill container: {ref}: Container {record.id} is not "
                               f"running")
            self._event(record, "kill", signal=str(signum))
            await asyncio.to_thread(freezer.thaw_quietly, record.id)
            self.supervisor.signal(record.id, signum)
            if signum == signal.SIGKILL:
                await self._wait_exit(record, 30)
                self._exited(record)

    async def restart(self, ref: str, timeout: int | None) -> None:
        record = self.get(ref)
        async with self.locks[record.id]:
            if self.state(record).running:
                await self._stop(record, timeout)
            await self._start(record)
            self._event(record, "restart")

    async def _wait_exit(self, record: ContainerRecord, timeout: float | None) -> bool:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.state(record).running:
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # --- pause, unpause ---------------------------------------------------------------
    async def pause(self, ref: str) -> None:
        record = self.get(ref)
        async with self.locks[record.id]:
            if not self.state(record).running:
                raise conflict(f"Container {record.id} is not running")
            if self.paused(record):
                raise conflict(f"Container {record.id} is already paused")
            await self._freeze(record, "FROZEN")
            self._event(record, "pause")

    async def unpause(self, ref: str) -> None:
        record = self.get(ref)
        async with self.locks[record.id]:
            if not self.paused(record):
                raise conflict(f"Container {record.id} is not paused")
            await self._freeze(record, "THAWED")
            self._event(record, "unpause")

    async def _freeze(self, record: ContainerRecord, wanted: str) -> None:
        if not freezer.available():
            raise ApiError(501, "the exec runtime cannot pause here: the cgroup freezer is "
                                "not mounted")
        try:
            await asyncio.to_thread(freezer.set_state, record.id, wanted)
        except OSError as exc:
            raise ApiError(500, f"cannot {'pause' if wanted == 'FROZEN' else 'unpause'} "
                                f"container {record.id}: {exc}") from None

    # --- remove, rename --------------------------------------------------------------
    async def remove(self, ref: str, force: bool, volumes: bool = False) -> None:
        """`volumes` (`rm -v`): the anonymous volumes go too."""
        record = self.get(ref)
        async with self.locks[record.id]:
            if self.state(record).running:
                if not force:
                    raise conflict(f"You cannot remove a running container {record.id}. Stop "
                                   f"the container before attempting removal or force remove")
                self._event(record, "kill", signal=str(int(signal.SIGKILL)))
                await asyncio.to_thread(freezer.thaw_quietly, record.id)
                self.supervisor.signal(record.id, signal.SIGKILL)
                await self._wait_exit(record, 30)
                self.notice_exit(record)
            self._destroy(record)
        if volumes:
            container_mounts.drop_anonymous(record, self.volumes)

    def _destroy(self, record: ContainerRecord) -> None:
        if record.id not in self.records:
            return
        # `wait?condition=removed` (docker run --rm) answers the exit code once the
        # files it is read from are gone: keep the last state for the waiters.
        # The Engine's answer for a removed container carries no Error (dockerd 20.10).
        self.final[record.id] = dataclasses.replace(self.state(record), error="")
        while len(self.final) > 1000:
            self.final.pop(next(iter(self.final)))
        del self.records[record.id]
        self.watching.discard(record.id)
        self.locks.pop(record.id, None)
        for waiter in self.start_waiters.pop(record.id, []):
            if not waiter.done():
                waiter.set_result(False)
        isolation.remove_cgroups(record.id)
        if self.network is not None:
            self.network.release_soon(record)
        self.store.remove(record.id)
        self._event(record, "destroy")
        self.changes.notify()

    def rename(self, ref: str, new_name: str) -> None:
        record = self.get(ref)
        if not new_name:
            raise bad_request("Neither old nor new names may be empty")
        new_name = check_name(new_name)
        owner = self.find_by_name(new_name)
        if owner is not None and owner is not record:
            raise conflict(f'Conflict. The container name "/{new_name}" is already in use by '
                           f'container "{owner.id}". You have to remove (or rename) that '
                           f"container to be able to reuse that name.")
        old = record.name
        record.name = new_name
        self.store.save(record)
        self._event(record, "rename", oldName=f"/{old}")

    # --- wait ------------------------------------------------------------------------
    async def wait(self, ref: str, condition: str) -> RunState:
        condition = condition or "not-running"
        if condition not in WAIT_CONDITIONS:
            raise bad_request(f"invalid condition: {condition}")
        record = self.get(ref)
        seen = self.exits[record.id]
        while True:
            gone = record.id not in self.records
            current = self.final.get(record.id) if gone else None
            current = current or self.state(record)
            if condition == "removed" and gone:
                return current
            if condition == "not-running" and (not current.running or gone):
                return current
            if condition == "next-exit" and (self.exits[record.id] != seen or gone):
                return current
            await self.changes.wait()

    # --- the watch -------------------------------------------------------------------
    def notice_exit(self, record: ContainerRecord) -> RunState | None:
        """Announce an exit once: the `die` event, waiters, bookkeeping on disk."""
        current = self.state(record)
        if current.running or current.finished_at == record.reported_finish \
                or current.status != "exited":
            return None
        record.reported_finish = current.finished_at
        self.store.save(record)
        self.watching.discard(record.id)
        if self.network is not None:
            self.network.release_soon(record)
        self._event(record, "die", exitCode=str(current.exit_code))
        if current.oom_killed:
            self._event(record, "oom")
        self.exits[record.id] += 1
        self.changes.notify()
        return current

    def _exited(self, record: ContainerRecord) -> None:
        """An exit seen by stop or kill: --rm and restart policies still apply, once the
        caller has let go of the container's lock."""
        exited = self.notice_exit(record)
        if exited is not None:
            asyncio.get_running_loop().create_task(self._after_exit_locked(record, exited))

    async def _after_exit_locked(self, record: ContainerRecord, exited: RunState) -> None:
        async with self.locks[record.id]:
            if record.id in self.records and not self.state(record).running:
                await self._after_exit(record, exited)

    async def watch(self) -> None:
        """Runs for the life of the runtime: exits happen while nobody asks."""
        while True:
            for cid in list(self.watching):
                record = self.records.get(cid)
                if record is None or self.locks[cid].locked():
                    continue
                exited = self.notice_exit(record)
                if exited is not None:
                    await self._after_exit(record, exited)
            await asyncio.sleep(POLL)

    async def _after_exit(self, record: ContainerRecord, exited: RunState) -> None:
        if record.host_config.get("AutoRemove"):
            self._destroy(record)
            container_mounts.drop_anonymous(record, self.volumes)
            return
        policy = record.host_config.get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        retries = int(policy.get("MaximumRetryCount") or 0)
        again = (name in ("always", "unless-stopped") and not record.manually_stopped) or (
            name == "on-failure" and exited.exit_code != 0
            and (retries == 0 or record.restart_count < retries))
        if again:
            asyncio.get_running_loop().create_task(self._restart_later(record))

    async def _restart_later(self, record: ContainerRecord) -> None:
        await asyncio.sleep(min(0.1 * 2 ** record.restart_count, 10))
        async with self.locks[record.id]:
            if record.id not in self.records or record.manually_stopped \
                    or self.state(record).running:
                return
            record.restart_count += 1
            with contextlib.suppress(ApiError, NotModified, OSError):
                await self._start(record)

    def cleanup_on_exit(self) -> None:
        """Drop cgroup folders of containers that no longer run (the shim normally does)."""
        for record in self.records.values():
            if not self.state(record).running:
                isolation.remove_cgroups(record.id)

    def counts(self) -> dict[str, int]:
        states = [self.state(r).status for r in self.records.values()]
        return {"total": len(states), "running": states.count("running"),
                "stopped": len(states) - states.count("running")}

