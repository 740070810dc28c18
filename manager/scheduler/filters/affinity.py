"""affinity: rules on what is already on a node. `container==NAME|ID|glob` (a container
there), `image==REF` (an image there: reported by the node or used by one of its
containers), anything else a container label (`affinity:app==web`: a container with
that label there)."""

from __future__ import annotations

from manager.cluster.state import ClusterState
from manager.scheduler.filters.base import NodeIds, RuleFilter, keep, value_hits
from manager.scheduler.rules import Rule
from manager.scheduler.spec import ContainerSpec


class AffinityFilter(RuleFilter):
    name = "affinity"

    def rules(self, spec: ContainerSpec) -> list[Rule]:
        return spec.affinities

    def condition(self, rule: Rule) -> str:
        """Classic Swarm prints affinities as `key==value (soft=false)`."""
        return f"{rule.condition} (soft={'true' if rule.soft else 'false'})"

    def apply_rule(
        self, state: ClusterState, spec: ContainerSpec, rule: Rule, candidates: NodeIds
    ) -> NodeIds:
        if rule.key == "container":
            hits = _container_hits(state, rule)
        elif rule.key == "image":
            hits = value_hits(rule, state.image_index())
        else:
            hits = value_hits(rule, state.container_label_values(rule.key))
        return keep(candidates, hits, rule.positive)


def _container_hits(state: ClusterState, rule: Rule) -> set[str]:
    """IDs of the nodes holding a container whose name or ID matches."""
    if rule.literal is not None:
        node_id = state.container_node(rule.literal)
        return {node_id} if node_id is not None else set()
    containers = state.container_map()
    hits = {
        containers[cid].node_id
        for name, cid in state.container_names().items()
        if rule.matches(name)
    }
    hits.update(c.node_id for cid, c in containers.items() if rule.matches(cid))
    return hits
