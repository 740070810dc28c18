"""classic Swarm's `--refresh-on-node-filter` and `--container-name-refresh-filter`:
re-read containers from the nodes before a `docker ps` answers from memory.

Flock's view follows each node's event stream, so a listing is normally current; these
flags are for the scripts that relied on classic's forced refresh right after a change
made behind the manager's back (on the engine itself). Same triggers as classic's
getContainersJSON (api/handlers.go): a `node` filter re-reads the nodes it names
exactly; a `name` filter equal to the configured name re-reads every node. A node that
cannot be reached is answered from memory, as classic does after a failed refresh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from flock.manager.api.docker.app import Call
from flock.manager.cluster.agent_client import AgentError

log = logging.getLogger("flock.manager.api")


def nodes_to_refresh(call: Call, filters: Mapping[str, list[str]]) -> list[str]:
    """IDs of the healthy nodes the flags ask to re-read for these filters."""
    config = getattr(call.manager, "config", None)
    if config is None:
        return []
    state = call.state
    healthy = state.healthy_nodes()
    name = getattr(config, "container_name_refresh_filter", "")
    if name and name in filters.get("name", ()):
        return [n.id for n in healthy]
    wanted = set(filters.get("node", ())) if getattr(config, "refresh_on_node_filter",
                                                     False) else set()
    return [n.id for n in healthy if n.name in wanted or n.id in wanted]


async def refresh_for_listing(call: Call, filters: Mapping[str, list[str]]) -> None:
    """Re-read the containers of the nodes `nodes_to_refresh` names, all at once."""
    node_ids = nodes_to_refresh(call, filters)
    if not node_ids:
        return
    watcher = call.manager.watcher
    results = await asyncio.gather(*(watcher.load_containers(nid) for nid in node_ids),
                                   return_exceptions=True)
    for node_id, result in zip(node_ids, results, strict=True):
        if isinstance(result, AgentError):
            log.debug("refreshing the containers of %s for a listing: %s", node_id, result)
        elif isinstance(result, BaseException):
            raise result
