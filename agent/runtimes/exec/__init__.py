"""The `exec` runtime: Flock's own container runtime for machines without a Docker
Engine. It answers the Docker Engine API on a unix socket."""

from flock.agent.runtimes.exec.runtime import ExecRuntime

__all__ = ["ExecRuntime"]
