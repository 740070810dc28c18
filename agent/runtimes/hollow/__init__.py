"""The hollow runtime: containers that exist only in memory but answer the Docker API
like real ones, so one process can stand in for hundreds of nodes in scale tests."""

from flock.agent.runtimes.hollow.runtime import HollowRuntime

__all__ = ["HollowRuntime"]
