"""The hollow node's containers: state transitions and events, no processes.

A container "runs" until it is stopped or killed. `Cmd` `["exit", "N"]` makes it exit
with code N as soon as it starts (like `sh -c 'exit N'`), so `wait` has a real code to
report; stop answers 143 (SIGTERM) and kill 128+signal, as a shell would.
"""

from __future__ import annotations

import asyncio
import secrets
import time

from flock.agent.runtimes.exec.errors import bad_request, conflict, not_found
from flock.agent.runtimes.exec.names import check_name, generate_name
from flock.agent.runtimes.exec.signals import parse_signal
from flock.agent.runtimes.exec.timefmt import ZERO_TIME, rfc3339nano

KEEP_EVENTS = 256
DEFAULT_IMAGES = ("busybox:latest",)


class MemoryBus:
    """The exec runtime's EventBus interface (history, queues, closing, emit) kept in
    memory only: a hollow node has nothing to recover after a restart."""

    def __init__(self) -> None:
        self.history: list[dict] = []
        self.queues: set[asyncio.Queue] = set()
        self.closing = asyncio.Event()

    def emit(self, kind: str, action: str, actor_id: str, attributes: dict[str, str],
             image: str = "") -> dict:
        ns = time.time_ns()
        event: dict = {"status": action, "id": actor_id, "from": image} \
            if kind == "container" else {}
        event.update(Type=kind, Action=action, Actor={"ID": actor_id, "Attributes": attributes},
                     scope="local", time=ns // 10**9, timeNano=ns)
        self.history.append(event)
        if len(self.history) > 2 * KEEP_EVENTS:
            del self.history[:-KEEP_EVENTS]
        for queue in self.queues:
            queue.put_nowait(event)
        return event


class HollowContainer:
    __slots__ = ("id", "name", "image", "config", "host_config", "created", "status",
                 "exit_code", "started_at", "finished_at", "waiters", "created_ns")

    def __init__(self, name: str, image: str, config: dict, host_config: dict) -> None:
        self.id = secrets.token_hex(32)
        self.name = name
        self.image = image
        self.config = config
        self.host_config = host_config
        self.created_ns = time.time_ns()
        self.created = rfc3339nano(self.created_ns)
        self.status = "created"
        self.exit_code = 0
        self.started_at = ZERO_TIME
        self.finished_at = ZERO_TIME
        self.waiters: list[tuple[bool, asyncio.Future]] | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    def command(self) -> list[str]:
        cmd = self.config.get("Cmd") or []
        entry = self.config.get("Entrypoint") or []
        return [*([entry] if isinstance(entry, str) else entry),
                *([cmd] if isinstance(cmd, str) else cmd)]

    def planned_exit(self) -> int | None:
        """The exit code `Cmd: ["exit", "N"]` asks for, None for a container that runs."""
        cmd = self.command()
        if len(cmd) == 2 and cmd[0] == "exit" and cmd[1].lstrip("-").isdigit():
            return int(cmd[1]) & 0xFF
        return None


def image_id(ref: str) -> str:
    """A stable fake image ID for a reference, so ps/inspect show the same one."""
    import hashlib

    return "sha256:" + hashlib.sha256(normalize(ref).encode()).hexdigest()


def normalize(ref: str) -> str:
    """`busybox` -> `busybox:latest`; references with a tag or digest unchanged."""
    return ref if ":" in ref.rpartition("/")[2] or "@" in ref else f"{ref}:latest"


class HollowNode:
    """One node's containers and images. `images` are present from the start; with
    `any_image` a create with another image succeeds as if the image had been pulled
    first (the image is then present). Nodes that list their images matter: the
    manager's implicit image affinity prefers nodes that have a container's image."""

    def __init__(self, images: list[str] | None = None, any_image: bool = False) -> None:
        self.containers: dict[str, HollowContainer] = {}
        self.names: dict[str, str] = {}
        self.images = [normalize(r) for r in (DEFAULT_IMAGES if images is None else images)]
        self.any_image = any_image
        self.bus = MemoryBus()

    def pull(self, ref: str) -> str:
        ref = normalize(ref)
        if ref not in self.images:
            self.images.append(ref)
            self.bus.emit("image", "pull", ref, {"name": ref})
        return ref

    # ------------------------------------------------------------ look-up
    def has_image(self, ref: str) -> bool:
        return normalize(ref) in self.images or ref in self.images

    def get(self, ref: str) -> HollowContainer:
        """By full ID, name or unique ID prefix; 404 otherwise, 400 when ambiguous."""
        ref = ref.lstrip("/")
        found = self.containers.get(ref) or self.containers.get(self.names.get(ref, ""))
        if found is not None:
            return found
        matches = [c for cid, c in self.containers.items() if ref and cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise bad_request(f"multiple IDs found with provided prefix: {ref}")
        raise not_found(f"No such container: {ref}")

    def counts(self) -> dict[str, int]:
        running = sum(1 for c in self.containers.values() if c.running)
        total = len(self.containers)
        return {"total": total, "running": running, "stopped": total - running}

    # ------------------------------------------------------------ changes
    def create(self, name: str, body: dict) -> HollowContainer:
        image = body.get("Image") or ""
        if not isinstance(image, str) or not image:
            raise bad_request("No image specified: Image is required")
        name = check_name(name) if name else generate_name(set(self.names))
        if name in self.names:
            raise conflict(f'Conflict. The container name "/{name}" is already in use by '
                           f'container "{self.names[name]}". You have to remove (or rename) '
                           f'that container to be able to reuse that name.')
        if not self.has_image(image):
            if not self.any_image:
                raise not_found(f"No such image: {image}")
            self.pull(image)
        config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
        config.setdefault("Labels", {})
        container = HollowContainer(name, image, config, dict(body.get("HostConfig") or {}))
        self.containers[container.id] = container
        self.names[name] = container.id
        self._emit(container, "create")
        return container

    def start(self, container: HollowContainer) -> bool:
        """False when it was running already (the Engine's 304)."""
        if container.running:
            return False
        container.status = "running"
        container.started_at = rfc3339nano(time.time_ns())
        container.finished_at = ZERO_TIME
        self._emit(container, "start")
        planned = container.planned_exit()
        if planned is not None:
            self._die(container, planned)
        return True

    def stop(self, container: HollowContainer, code: int = 143) -> bool:
        """False when it was not running (the Engine's 304)."""
        if not container.running:
            return False
        self._emit(container, "kill", signal="15")
        self._die(container, code)
        self._emit(container, "stop")
        return True

    def kill(self, container: HollowContainer, signal_text: str) -> None:
        number = parse_signal(signal_text or "SIGKILL")
        if not container.running:
            raise conflict(f"Container {container.id} is not running")
        self._emit(container, "kill", signal=str(number))
        if number in (2, 9, 15):  # the ones a shell dies of; others are ignored
            self._die(container, 128 + number)

    def remove(self, container: HollowContainer, force: bool) -> None:
        if container.running:
            if not force:
                raise conflict(f"You cannot remove a running container {container.id}. "
                               f"Stop the container before attempting removal or force "
                               f"remove")
            self.kill(container, "SIGKILL")
        del self.containers[container.id]
        self.names.pop(container.name, None)
        self._emit(container, "destroy")
        self._wake(container, removed=True)

    def waiter(self, container: HollowContainer, condition: str) -> asyncio.Future:
        """A future for the exit code, registered now, so that a start that follows at
        once cannot slip past a `next-exit` wait."""
        future = asyncio.get_running_loop().create_future()
        if condition == "not-running" and not container.running:
            future.set_result(container.exit_code)
            return future
        if container.waiters is None:
            container.waiters = []
        container.waiters.append((condition == "removed", future))
        return future

    # ------------------------------------------------------------ helpers
    def _die(self, container: HollowContainer, code: int) -> None:
        container.status = "exited"
        container.exit_code = code
        container.finished_at = rfc3339nano(time.time_ns())
        self._emit(container, "die", exitCode=str(code))
        self._wake(container)

    def _wake(self, container: HollowContainer, removed: bool = False) -> None:
        """Answer the waiters: all of them on removal, the others when it exits."""
        kept = []
        for on_removal, future in container.waiters or []:
            if on_removal and not removed:
                kept.append((on_removal, future))
            elif not future.done():
                future.set_result(container.exit_code)
        container.waiters = kept or None

    def _emit(self, container: HollowContainer, action: str, **extra: str) -> None:
        attributes = dict(container.config.get("Labels") or {})
        attributes.update(image=container.image, name=container.name, **extra)
        self.bus.emit("container", action, container.id, attributes, container.image)
