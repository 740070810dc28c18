"""What the manager learns about a node, built from the runtime's /info and /version.

The standard label keys (storagedriver, executiondriver, kernelversion,
operatingsystem, ostype) are the ones classic Swarm's constraint filter knew, so
`-e constraint:storagedriver==overlay2` keeps working.
"""

from __future__ import annotations

import asyncio
from importlib import metadata

from flock.agent import engine_api
from flock.agent.engine_endpoint import Endpoint
from flock.protos import agent_pb2

NOT_SUPPORTED = "<not supported>"  # what newer engines report as their execution driver


def agent_version() -> str:
    try:
        return metadata.version("flock")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def parse_engine_labels(labels: list[str] | None) -> dict[str, str]:
    """Engine labels come as "k=v" strings; a label without "=" gets an empty value."""
    parsed = {}
    for item in labels or []:
        key, _, value = item.partition("=")
        if key:
            parsed[key] = value
    return parsed


def node_labels(info: dict, runtime: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Engine labels, then the standard keys (which win over engine labels of the same
    name, as in classic Swarm), then the agent's own --label values."""
    labels = parse_engine_labels(info.get("Labels"))
    labels.update({
        "storagedriver": info.get("Driver") or "",
        "executiondriver": info.get("ExecutionDriver") or NOT_SUPPORTED,
        "kernelversion": info.get("KernelVersion") or "",
        "operatingsystem": info.get("OperatingSystem") or "",
        "ostype": info.get("OSType") or "",
        "runtime": runtime,
    })
    labels.update(extra or {})
    return labels


def build_node_info(
    info: dict, version: dict, raw_info: bytes, *, runtime: str, address: str,
    name: str | None = None, extra_labels: dict[str, str] | None = None,
) -> agent_pb2.NodeInfo:
    """NodeInfo from the runtime's parsed /info and /version answers."""
    return agent_pb2.NodeInfo(
        id=info.get("ID") or "",
        name=name or info.get("Name") or "",
        address=address,
        cpus=int(info.get("NCPU") or 0),
        memory=int(info.get("MemTotal") or 0),
        labels=node_labels(info, runtime, extra_labels),
        runtime=runtime,
        server_version=version.get("Version") or info.get("ServerVersion") or "",
        api_version=version.get("ApiVersion") or "",
        min_api_version=version.get("MinAPIVersion") or "",
        os=info.get("OperatingSystem") or "",
        ostype=info.get("OSType") or "",
        kernel_version=info.get("KernelVersion") or "",
        storage_driver=info.get("Driver") or "",
        execution_driver=info.get("ExecutionDriver") or NOT_SUPPORTED,
        containers=int(info.get("Containers") or 0),
        images=int(info.get("Images") or 0),
        agent_version=agent_version(),
        engine_info=raw_info,
        warnings=[str(w) for w in info.get("Warnings") or []],
    )


async def fetch_node_info(
    endpoint: Endpoint | str, *, runtime: str, address: str, name: str | None = None,
    extra_labels: dict[str, str] | None = None,
) -> agent_pb2.NodeInfo:
    """Ask the runtime at `endpoint`; engine_api.EngineError when it does not answer."""
    (info, raw_info), (version, _) = await asyncio.gather(
        engine_api.get_json(endpoint, "/info"),
        engine_api.get_json(endpoint, "/version"),
    )
    if not isinstance(info, dict) or not isinstance(version, dict):
        raise engine_api.EngineError("runtime answered /info or /version with a non-object")
    return build_node_info(info, version, raw_info, runtime=runtime, address=address,
                           name=name, extra_labels=extra_labels)
