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

from flock.manager.api.docker.call import Call
from flock.manager.cluster.agent_client import AgentError

log = logging.getLogger("flock.manager.api")


def nodes_to_refresh(call: Call, filters: Mapping[str, list[str]]) -> list[str]:
    """IDs of the healthy nodes the flags ask to re-read for these filters."""
    flags = call.cluster.listing
    if not flags.name_filter and not flags.on_node_filter:
        return []
    healthy = call.state.healthy_nodes()
    if flags.name_filter and flags.name_filter in filters.get("name", ()):
        return [n.id for n in healthy]
    wanted = set(filters.get("node", ())) if flags.on_node_filter else set()
    return [n.id for n in healthy if n.name in wanted or n.id in wanted]


async def refresh_for_listing(call: Call, filters: Mapping[str, list[str]]) -> None:
    """Re-read the containers of the nodes `nodes_to_refresh` names, all at once."""
    node_ids = nodes_to_refresh(call, filters)
    if not node_ids:
        return
    records = call.cluster.records
    results = await asyncio.gather(*(records.load_containers(nid) for nid in node_ids),
                                   return_exceptions=True)
    for node_id, result in zip(node_ids, results, strict=True):
        if isinstance(result, AgentError):
            log.debug("refreshing the containers of %s for a listing: %s", node_id, result)
        elif isinstance(result, BaseException):
            raise result
