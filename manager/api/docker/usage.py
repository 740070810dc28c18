"""Disk usage and the build cache of the whole cluster: `GET /system/df` (`docker system
df`) and `POST /build/prune` go to every healthy node and their answers are summed, as
`docker info` sums containers and images. Names are qualified as in the listings:
containers `/node/name`, volumes `node/name`; an image on several nodes is listed once.
"""

from __future__ import annotations

from aiohttp import web

from flock.manager.api.docker.call import Call
from flock.manager.api.docker.errors import json_answer
from flock.manager.api.docker.images import merge_images
from flock.manager.api.docker.pernode import each_node, first_error


async def disk_usage(call: Call) -> web.StreamResponse:
    return json_answer(merge_usage(await _ask_all(call, "GET", "/system/df")))


async def build_prune(call: Call) -> web.StreamResponse:
    return json_answer(merge_pruned(await _ask_all(call, "POST", "/build/prune")))


async def _ask_all(call: Call, method: str, path: str) -> list[tuple[str, dict]]:
    """(node name, its JSON answer) of every healthy node; a refusal from any is the
    answer (the engine's own words when only one node was asked)."""
    nodes = call.state.healthy_nodes()
    results = await each_node(call, nodes, method, path, call.query_string)
    if any(status >= 300 for _, status, _ in results):
        raise first_error(results, single=len(nodes) == 1)
    return [(node.name, body if isinstance(body, dict) else {}) for node, _, body in results]


def merge_usage(answers: list[tuple[str, dict]]) -> dict:
    """One `/system/df` answer out of each node's."""
    return {
        "LayersSize": sum(int(answer.get("LayersSize") or 0) for _, answer in answers),
        "Images": merge_images([answer.get("Images") or [] for _, answer in answers]),
        "Containers": [
            dict(entry, Names=[f"/{node}/{name.lstrip('/')}" for name in entry.get("Names") or []])
            for node, answer in answers for entry in answer.get("Containers") or []],
        "Volumes": [dict(entry, Name=f"{node}/{entry.get('Name', '')}")
                    for node, answer in answers for entry in answer.get("Volumes") or []],
        "BuildCache": [entry for _, answer in answers for entry in answer.get("BuildCache") or []],
    }


def merge_pruned(answers: list[tuple[str, dict]]) -> dict:
    """One `/build/prune` answer out of each node's."""
    deleted = [item for _, answer in answers for item in answer.get("CachesDeleted") or []]
    return {"CachesDeleted": deleted or None,
            "SpaceReclaimed": sum(int(answer.get("SpaceReclaimed") or 0)
                                  for _, answer in answers)}


ROUTES = [
    ("GET", "/system/df", disk_usage),
    ("POST", "/build/prune", build_prune),
]
