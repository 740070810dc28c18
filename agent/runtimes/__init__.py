"""Runtimes: what answers the Docker API on a node (see agent.runtimes.base)."""

from __future__ import annotations

import logging
from pathlib import Path

from flock.agent.runtimes.base import Runtime, RuntimeUnavailable
from flock.agent.runtimes.docker import DEFAULT_DOCKER_HOST, DockerRuntime, engine_answers

__all__ = ["Runtime", "RuntimeUnavailable", "make_runtime", "RUNTIME_NAMES"]

log = logging.getLogger(__name__)

RUNTIME_NAMES = ("auto", "docker", "exec", "hollow")


def make_runtime(name: str, **opts) -> Runtime:
    """The runtime called `name`.

    Options: docker_host, docker_tls (docker: the engine's address, and the TLS client
    context for a tcp:// engine that speaks TLS); state_dir, node_name, labels, cpus,
    memory (exec and hollow); images, any_image (hollow: the images present, and whether others are
    pulled on create).
    "auto" takes the local engine when it answers and the embedded runtime otherwise,
    so `flock join` works the same on machines with and without Docker.
    """
    docker_host = opts.get("docker_host") or DEFAULT_DOCKER_HOST
    docker_tls = opts.get("docker_tls")
    if name == "auto":
        if engine_answers(docker_host, tls=docker_tls):
            log.info("runtime auto: using docker, the engine at %s answers", docker_host)
            name = "docker"
        else:
            log.info("runtime auto: using exec, no Docker Engine answers at %s", docker_host)
            name = "exec"
    if name == "docker":
        return DockerRuntime(docker_host, docker_tls)
    if name == "exec":
        return _exec_runtime(opts)
    if name == "hollow":
        return _hollow_runtime(opts)
    raise ValueError(f"unknown runtime {name!r}: expected one of {', '.join(RUNTIME_NAMES)}")


def _exec_runtime(opts: dict) -> Runtime:
    from flock.agent.runtimes.exec import ExecRuntime  # written separately; loaded on demand
    from flock.agent.runtimes.exec.network import NetworkConfig

    state_dir = opts.get("state_dir") or Path.home() / ".flock" / "agent"
    return ExecRuntime(
        Path(state_dir),
        node_name=opts.get("node_name"),
        labels=opts.get("labels"),
        cpus=opts.get("cpus"),
        memory=opts.get("memory"),
        network=NetworkConfig.from_options(opts.get("bridge") or "", opts.get("subnet") or ""),
        insecure_registries=tuple(opts.get("insecure_registries") or ()),
    )


def _hollow_runtime(opts: dict) -> Runtime:
    from flock.agent.runtimes.hollow import HollowRuntime

    state_dir = opts.get("state_dir")
    return HollowRuntime(
        Path(state_dir) if state_dir else None,
        node_name=opts.get("node_name"),
        labels=opts.get("labels"),
        cpus=opts.get("cpus"),
        memory=opts.get("memory"),
        images=opts.get("images"),
        any_image=bool(opts.get("any_image")),
    )
