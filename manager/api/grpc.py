"""ClusterService: the cluster as typed gRPC calls (protos/cluster.proto), beside the
Docker API front.

Placement goes through the same functions as `POST /containers/create` (spec_from_create,
the implicit image affinity, `scheduler.place` then `state.reserve` with no await in
between, prepare_create_body), so a Run lands where `docker run` would and a bad rule
gets the Docker API's message. Errors map the Engine's status codes to gRPC codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

import grpc

from flock.certs.exposure import is_loopback, refusal
from flock.docker_compat.paths import api_path
from flock.manager.api.cron_messages import (
    cron_code,
    job_from_message,
    run_message,
    status_message,
    with_volumes,
)
from flock.manager.api.docker.containers import conflict
from flock.manager.api.docker.ps import present
from flock.manager.cluster.agent_client import AgentError, AgentUnavailable
from flock.manager.cluster.clients import NodeNotConnected
from flock.manager.cluster.container_names import NameTaken
from flock.manager.cluster.labels import GLOBAL_LABEL, wants_reschedule
from flock.manager.cluster.model import Container, Node
from flock.manager.cluster.state import Ambiguous, ClusterState, NotFound
from flock.manager.cron.jobs import CronError
from flock.manager.placement.create import Refused, with_image_affinity
from flock.manager.placement.global_copies import run_global
from flock.manager.scheduler.drain import ACTIVE, DRAIN, drained, set_drained
from flock.manager.scheduler.scheduler import NoNodeAvailable
from flock.manager.scheduler.spec import RuleError, spec_from_create
from flock.protos import cluster_pb2 as pb
from flock.protos import cluster_pb2_grpc

if TYPE_CHECKING:
    from flock.certs import Identity
    from flock.manager.api.cluster_parts import Cluster

log = logging.getLogger("flock.manager.grpc")

CODES = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
         409: grpc.StatusCode.FAILED_PRECONDITION, 501: grpc.StatusCode.UNIMPLEMENTED,
         503: grpc.StatusCode.UNAVAILABLE}


LIVE = ("running", "paused", "restarting")  # what `docker ps` shows without -a


class Failure(Exception):
    """An answer that is an error: a gRPC code and the message the client shows."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def name_conflict(exc: NameTaken) -> Failure:
    """The Docker API's 409 text for a taken name, as ALREADY_EXISTS."""
    return Failure(grpc.StatusCode.ALREADY_EXISTS, conflict(exc.name, exc.holder).message)


def failure_for(status: int, answer: object) -> Failure:
    message = answer.get("message") if isinstance(answer, dict) else None
    return Failure(CODES.get(status, grpc.StatusCode.INTERNAL), str(message or answer))


# ------------------------------------------------------------------ conversions
def node_status(state: ClusterState, node: Node) -> pb.NodeStatus:
    usage = state.usage(node.id)
    return pb.NodeStatus(
        id=node.id, name=node.name, address=node.addr, health=node.health, error=node.error,
        drained=node.id in drained(state).ids, cpus=node.cpus, memory=node.memory,
        reserved_cpus=usage.cpus, reserved_memory=usage.memory, containers=usage.containers,
        labels=node.labels, runtime=node.runtime)


def container_info(state: ClusterState, container: Container) -> pb.ContainerInfo:
    node = state.node(container.node_id)
    return pb.ContainerInfo(
        id=container.id, name=container.name, node=node.name if node else "",
        node_id=container.node_id, image=container.image, state=container.state,
        status=str(present(container, node).get("Status") or container.state),
        reserved_cpus=container.reserved_cpus, reserved_memory=container.reserved_memory,
        labels=container.labels, created=container.created)


def _parsed(data: bytes) -> object:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def create_body(spec: pb.ContainerSpec) -> dict:
    """The Docker create JSON `docker run` would send for the same options."""
    if not spec.image:
        raise Failure(grpc.StatusCode.INVALID_ARGUMENT, "an image is required")
    host: dict = {}
    if spec.memory < 0 or spec.cpus < 0:
        raise Failure(grpc.StatusCode.INVALID_ARGUMENT, "memory and cpus must not be negative")
    if spec.memory:
        host["Memory"] = spec.memory
    if spec.cpus:
        host["NanoCpus"] = int(spec.cpus * 1e9)
    exposed, bindings = {}, {}
    for text in spec.ports:
        outside, sep, inside = text.rpartition(":")
        port, _, proto = inside.partition("/")
        if not sep or not outside.isdigit() or not port.isdigit() or proto not in ("", "tcp",
                                                                                    "udp"):
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT,
                          f'invalid port "{text}": expected HOST:CONTAINER[/tcp|/udp]')
        key = f"{port}/{proto or 'tcp'}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": "", "HostPort": outside})
    if bindings:
        host["PortBindings"] = bindings
    body: dict = {"Image": spec.image, "Env": list(spec.env), "Labels": dict(spec.labels),
                  "HostConfig": host}
    if spec.cmd:
        body["Cmd"] = list(spec.cmd)
    if exposed:
        body["ExposedPorts"] = exposed
    return body


# ------------------------------------------------------------------ the service
class ClusterService(cluster_pb2_grpc.ClusterServiceServicer):
    """Over the narrow `Cluster` (api/cluster_parts.py), as the Docker API's handlers."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.watchers: set[asyncio.Queue] = set()  # open Events streams

    @property
    def state(self) -> ClusterState:
        return self.cluster.state

    async def ListNodes(self, request, context) -> pb.ListNodesReply:
        nodes = sorted(self.state.nodes(), key=lambda n: n.name)
        return pb.ListNodesReply(nodes=[node_status(self.state, n) for n in nodes])

    async def ListContainers(self, request, context) -> pb.ListContainersReply:
        found = [c for c in self.state.containers() if request.all or c.state in LIVE]
        found.sort(key=lambda c: c.created, reverse=True)
        return pb.ListContainersReply(
            containers=[container_info(self.state, c) for c in found])

    async def InspectContainer(self, request, context) -> pb.ContainerInfo:
        return await _answer(context, self._inspect(request.ref))

    async def _inspect(self, ref: str) -> pb.ContainerInfo:
        return container_info(self.state, self._container(ref)[0])

    async def Run(self, request, context) -> pb.RunReply:
        if getattr(request, "global"):
            return await _answer(context, self._run_global(request.spec))
        return await _answer(context, self._run(request.spec))

    async def Stop(self, request, context) -> pb.ContainerInfo:
        query = f"t={request.timeout}" if request.timeout else ""
        return await _answer(context, self._act(request.ref, "stop", query))

    async def Remove(self, request, context) -> pb.RemoveReply:
        return await _answer(context, self._remove(request.ref, request.force))

    async def Explain(self, request, context) -> pb.Explanation:
        return await _answer(context, self._explain(request))

    async def Drain(self, request, context) -> pb.DrainReply:
        return await _answer(context, self._drain_node(request.ref, request.reschedule))

    async def Activate(self, request, context) -> pb.NodeStatus:
        return await _answer(context, self._drain(request.ref, False))

    async def UpdateNode(self, request, context) -> pb.NodeStatus:
        return await _answer(context, self._update_node(
            request.ref, dict(request.labels_add), list(request.labels_remove)))

    # ------------------------------------------------------------- cron jobs
    async def CreateJob(self, request, context) -> pb.JobStatus:
        return await _answer(context, self._create_job(request.job))

    async def ListJobs(self, request, context) -> pb.ListJobsReply:
        return await _answer(context, self._jobs(lambda cron: pb.ListJobsReply(
            jobs=[status_message(s) for s in cron.list()])))

    async def InspectJob(self, request, context) -> pb.JobStatus:
        return await _answer(context, self._jobs(
            lambda cron: status_message(cron.get(request.name))))

    async def RemoveJob(self, request, context) -> pb.RemoveJobReply:
        async def remove(cron):
            await cron.remove(request.name)
            return pb.RemoveJobReply(name=request.name)
        return await _answer(context, self._jobs(remove, write=True))

    async def SuspendJob(self, request, context) -> pb.JobStatus:
        return await _answer(context, self._switch_job(request.name, suspend=True))

    async def ResumeJob(self, request, context) -> pb.JobStatus:
        return await _answer(context, self._switch_job(request.name, suspend=False))

    async def RunJob(self, request, context) -> pb.JobRun:
        async def run(cron):
            return run_message(await cron.run_now(request.name))
        return await _answer(context, self._jobs(run, write=True))

    async def JobHistory(self, request, context) -> pb.JobHistoryReply:
        async def history(cron):
            return pb.JobHistoryReply(runs=[run_message(r)
                                            for r in await cron.history(request.name)])
        return await _answer(context, self._jobs(history))

    async def Events(self, request, context) -> AsyncIterator[pb.Event]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1000)
        self.watchers.add(queue)
        since = time.time()
        tasks: dict[str, asyncio.Task] = {}

        def follow(node_id: str) -> None:
            """Follow a node once per stream, including nodes that turn healthy later
            (a node coming back gets a new follower, from the moment it returned)."""
            node = self.state.node(node_id)
            old = tasks.get(node_id)
            if node is None or (old is not None and not old.done()):
                return
            tasks[node_id] = asyncio.create_task(
                self._follow(node, since if old is None else time.time(), queue))

        for node in self.state.healthy_nodes():
            follow(node.id)
        if self.cluster.local_events is not None:  # the manager's own: cron runs
            tasks[""] = asyncio.create_task(self._follow_manager(queue))
        self.cluster.nodes.on_healthy.append(follow)
        try:
            while True:
                yield await queue.get()
        finally:
            self.cluster.nodes.on_healthy.remove(follow)
            self.watchers.discard(queue)
            for task in tasks.values():
                task.cancel()

    # ------------------------------------------------------------- the work
    def _primary_only(self) -> None:
        """Changes are the primary's to make (replicated managers); the Docker front
        forwards them, this service says where to go instead."""
        if self.cluster.this.is_primary():
            return
        leader = self.cluster.this.primary_address()
        where = f"the primary (Docker API {leader})" if leader else "the primary, once elected"
        raise Failure(grpc.StatusCode.FAILED_PRECONDITION,
                      f"this manager is a replica: send changes to {where}")

    async def _jobs(self, work, write: bool = False):
        """`work(cron)` (a value or an awaitable) with the cron service's refusals as gRPC
        codes; a change only on the primary, as every other write here."""
        cron = self.cluster.cron
        if cron is None:
            raise Failure(grpc.StatusCode.UNIMPLEMENTED,
                          "this manager does not serve cron jobs")
        if write:
            self._primary_only()
        try:
            found = work(cron)
            return await found if inspect.isawaitable(found) else found
        except CronError as exc:
            raise Failure(cron_code(exc), str(exc)) from None

    async def _create_job(self, message: pb.Job) -> pb.JobStatus:
        body = create_body(message.spec)  # the body `docker run` sends for these options
        try:
            spec_from_create(body, "")  # a bad rule is refused as `docker run` refuses it
        except RuleError as exc:
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None

        async def create(cron):
            job = await cron.create(job_from_message(message, with_volumes(body,
                                                                           message.volumes)))
            return status_message(cron.get(job.name))
        return await self._jobs(create, write=True)

    async def _switch_job(self, name: str, suspend: bool) -> pb.JobStatus:
        async def switch(cron):
            job = await (cron.suspend(name) if suspend else cron.resume(name))
            return status_message(cron.get(job.name))
        return await self._jobs(switch, write=True)

    def _container(self, ref: str) -> tuple[Container, Node]:
        try:
            container = self.state.resolve(ref)
        except Ambiguous as exc:
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except NotFound as exc:
            raise Failure(grpc.StatusCode.NOT_FOUND, str(exc)) from None
        node = self.state.node(container.node_id)
        if node is None:
            raise Failure(grpc.StatusCode.NOT_FOUND, f"No such container: {ref}")
        return container, node

    def _node(self, ref: str) -> Node:
        try:
            return self.state.find_node(ref)
        except NotFound as exc:
            raise Failure(grpc.StatusCode.NOT_FOUND, str(exc)) from None

    async def _call(self, node: Node, method: str, path: str, query: str = "",
                    body: object | None = None) -> tuple[int, object]:
        client = self.cluster.clients.require(node)
        try:
            return await client.request_json(method, path, query, body)
        except AgentUnavailable as exc:
            raise Failure(grpc.StatusCode.UNAVAILABLE, str(exc)) from None

    def _spec(self, request: pb.ContainerSpec):
        body = create_body(request)
        try:
            return body, spec_from_create(body, request.name)
        except RuleError as exc:
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None

    async def _run(self, request: pb.ContainerSpec) -> pb.RunReply:
        self._primary_only()
        name = request.name.lstrip("/")
        if name and self.state.name_taken(name):  # fast; the claim at placement decides
            raise name_conflict(NameTaken(name, self.state.container_names().get(name, "")))
        body, spec = self._spec(request)
        try:
            placed = await self.cluster.placement.run(body, spec, name)
        except NoNodeAvailable as exc:
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        except NameTaken as exc:
            raise name_conflict(exc) from None
        except AgentError as exc:
            raise Failure(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        except Refused as exc:
            raise failure_for(exc.status, exc.answer) from None
        return pb.RunReply(container=container_info(self.state, placed.record),
                           warnings=placed.warnings)

    async def _run_global(self, request: pb.ContainerSpec) -> pb.RunReply:
        self._primary_only()
        group = request.name.lstrip("/")
        if not group:
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT,
                          "a global run needs a name: its copies are named NAME.NODE")
        if self.state.container_label_values(GLOBAL_LABEL).get(group):
            raise Failure(grpc.StatusCode.ALREADY_EXISTS,
                          f'global group "{group}" already exists: remove its copies first')
        body, spec = self._spec(request)
        ran = await run_global(self.cluster.placement, body, spec, group)
        if not ran.placed:
            raise Failure(grpc.StatusCode.FAILED_PRECONDITION,
                          "no node can take a copy: " + "; ".join(ran.skipped or
                                                                 ["there are no healthy nodes"]))
        placed = [container_info(self.state, c) for c in ran.placed]
        return pb.RunReply(container=placed[0], placed=placed, skipped=ran.skipped)

    async def _act(self, ref: str, action: str, query: str = "") -> pb.ContainerInfo:
        self._primary_only()
        container, node = self._container(ref)
        status, answer = await self._call(
            node, "POST", api_path("containers", container.id, action), query)
        if status >= 300 and status != 304:
            raise failure_for(status, answer)
        with contextlib.suppress(AgentError):
            container = await self.cluster.records.refresh(node.id, container.id) or container
        return container_info(self.state, container)

    async def _remove(self, ref: str, force: bool) -> pb.RemoveReply:
        self._primary_only()
        container, node = self._container(ref)
        status, answer = await self._call(node, "DELETE", api_path("containers", container.id),
                                          "force=1" if force else "")
        if status >= 300 and status != 404:
            raise failure_for(status, answer)
        self.cluster.records.forget(container.id)
        return pb.RemoveReply(id=container.id)

    async def _explain(self, request: pb.ContainerSpec) -> pb.Explanation:
        _, spec = self._spec(request)
        placing, _ = with_image_affinity(self.state, spec)
        scheduler = self.cluster.scheduler
        found = scheduler.explain(self.state, placing)
        nodes = self.state.node_map()

        def names(ids: set[str]) -> list[str]:
            return sorted(nodes[i].name if i in nodes else i for i in ids)

        return pb.Explanation(
            removals=[pb.Removal(condition=r.condition, nodes=names(r.removed), detail=r.detail)
                      for r in found.removals],
            dropped_soft=found.dropped_soft,
            ranking=[pb.RankedNode(node=n.name, weight=w, containers=c)
                     for n, w, c in found.ranking],
            error=found.error, strategy=scheduler.strategy_name, filters=scheduler.filter_names)

    async def _tell_node(self, node: Node, add: dict[str, str], remove: list[str],
                         availability: str = "") -> Node:
        """Have the node's agent keep the change, then take its answer into the state."""
        client = self.cluster.clients.require(node)
        try:
            info = await client.update_node(add, remove, availability)
        except AgentError as exc:  # the agent's own refusal keeps its code
            unreachable = isinstance(exc, AgentUnavailable) or exc.code is None
            raise Failure(grpc.StatusCode.UNAVAILABLE if unreachable else exc.code,
                          str(exc)) from None
        return self.cluster.nodes.take_info(node.id, info) or node

    async def _update_node(self, ref: str, add: dict[str, str],
                           remove: list[str]) -> pb.NodeStatus:
        self._primary_only()
        if not add and not remove:
            raise Failure(grpc.StatusCode.INVALID_ARGUMENT,
                          "nothing to change: give --label-add KEY=VALUE or --label-rm KEY")
        node = await self._tell_node(self._node(ref), add, remove)
        log.info("node %s: labels now %s", node.name, node.labels)
        self.cluster.global_copies.node_ready(node.id)  # it may be eligible now
        self._publish(pb.Event(kind="node", action="update", node=node.name, id=node.id,
                               time=time.time()))
        return node_status(self.state, node)

    async def _drain(self, ref: str, value: bool) -> pb.NodeStatus:
        self._primary_only()
        node = self._node(ref)
        was = node.id in drained(self.state).ids
        node = await self._tell_node(node, {}, [], DRAIN if value else ACTIVE)
        set_drained(self.state, node.id, value)
        if was != value:
            action = "drain" if value else "activate"
            log.info("node %s: %s", node.name, action)
            self._publish(pb.Event(kind="node", action=action, node=node.name, id=node.id,
                                   time=time.time()))
        return node_status(self.state, node)

    async def _drain_node(self, ref: str, reschedule: bool) -> pb.DrainReply:
        status = await self._drain(ref, True)
        reply = pb.DrainReply(node=status)
        if not reschedule:
            return reply
        rescheduler = self.cluster.rescheduler
        for container in self.state.containers(status.id):
            if not wants_reschedule(container.labels):
                continue
            label = container.name or container.id[:12]
            moved = await rescheduler.move(container)
            (reply.moved if moved else reply.stayed).append(label)
        reply.node.CopyFrom(node_status(self.state, self._node(status.id)))
        return reply

    def _publish(self, event: pb.Event) -> None:
        for queue in self.watchers:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    async def _follow_manager(self, queue: asyncio.Queue) -> None:
        """The manager's own events (cron runs) into one Events stream."""
        assert self.cluster.local_events is not None
        with self.cluster.local_events.subscribe() as mine:
            while True:
                event = await mine.get()
                attributes = event["Actor"]["Attributes"]
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(pb.Event(
                        kind=event["Type"], action=event["Action"],
                        node=attributes.get("node", ""), id=event["Actor"]["ID"],
                        time=event["timeNano"] / 1e9, raw=json.dumps(event).encode()))

    async def _follow(self, node: Node, since: float, queue: asyncio.Queue) -> None:
        """One node's container events into one Events stream, until it ends."""
        client = self.cluster.clients.get(node.id)
        if client is None:
            return
        try:
            async for event in client.events(since=since):
                actor = event.get("Actor") or {}
                queue.put_nowait(pb.Event(
                    kind=str(event.get("Type") or "container"), action=str(event.get("Action")
                                                                           or ""),
                    node=node.name, id=str(actor.get("ID") or event.get("id") or ""),
                    time=float(event.get("time") or 0), raw=json.dumps(event).encode()))
        except (AgentError, asyncio.QueueFull) as exc:
            log.info("events of %s for a ClusterService stream ended: %s", node.name, exc)


async def _answer(context: grpc.aio.ServicerContext, work):
    """Await `work`; a Failure ends the call with its code and message, as does a node
    that is not connected (UNAVAILABLE, the Docker API's 503 and the same text)."""
    try:
        return await work
    except Failure as exc:
        await context.abort(exc.code, str(exc))
    except NodeNotConnected as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))


# ------------------------------------------------------------------ serving
class ListenError(ValueError):
    """An address the ClusterService cannot serve on; the message names the flag. The
    manager (app.py, above this module) reports it as its ConfigError."""


class Serving(Protocol):
    """What serving needs of app.py's Manager: its narrow cluster, its front's TLS
    identity and its config (tlsverify, insecure)."""

    cluster: Cluster
    front_tls: Identity | None
    config: Any


def server_credentials(manager: Serving) -> grpc.ServerCredentials | None:
    """The Docker front's identity; client certs are required as with --tlsverify."""
    ident = manager.front_tls
    if ident is None:
        return None
    verify = manager.config.tlsverify
    return grpc.ssl_server_credentials(
        [(ident.key_pem, ident.cert_pem)],
        root_certificates=ident.ca_pem if verify else None, require_client_auth=verify)


async def start_server(manager: Serving, addr: str, private_socket: str = ""
                       ) -> tuple[grpc.aio.Server, str]:
    """Serve ClusterService on HOST:PORT (--grpc-addr; "" for none) and on
    `private_socket`, the unix socket the Docker API listeners pass gRPC connections to
    (shared_port.py: TLS and client certs are checked there, so that socket must be
    reachable by this user only). Returns the server and the HOST:PORT bound (the real
    port when 0 was asked for). Plaintext only on loopback unless --insecure."""
    server = grpc.aio.server()
    cluster_pb2_grpc.add_ClusterServiceServicer_to_server(ClusterService(manager.cluster), server)
    bound = _add_port(server, manager, addr) if addr else ""
    if private_socket:
        server.add_insecure_port(f"unix:{private_socket}")
    await server.start()
    return server, bound


def _add_port(server: grpc.aio.Server, manager: Serving, addr: str) -> str:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ListenError(f"invalid --grpc-addr {addr!r}: expected HOST:PORT")
    credentials = server_credentials(manager)
    if credentials is None and not is_loopback(host.strip("[]")) and not manager.config.insecure:
        raise ListenError(refusal("--grpc-addr", addr, "--tlsverify --tlscacert --tlscert "
                                                       "--tlskey"))
    try:
        bound = (server.add_secure_port(addr, credentials) if credentials is not None
                 else server.add_insecure_port(addr))
    except RuntimeError as exc:
        raise ListenError(f"cannot listen on {addr} (--grpc-addr): {exc}") from None
    return f"{host}:{bound}"
