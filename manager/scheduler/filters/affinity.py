"""affinity: rules on what is already on a node. `container==NAME|ID|glob` (a container
there), `image==REF` (an image there: reported by the node or used by one of its
containers), anything else a container label (`affinity:app==web`: a container with
that label there)."""

from __future__ import annotations

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.filters.base import NONE, RuleFilter, value_hits
from flock.manager.scheduler.index import index_for
from flock.manager.scheduler.query import IdCollection
from flock.manager.scheduler.rules import Rule
from flock.manager.scheduler.spec import ContainerSpec


class AffinityFilter(RuleFilter):
    name = "affinity"

    def rules(self, spec: ContainerSpec) -> list[Rule]:
        return spec.affinities

    def condition(self, rule: Rule) -> str:
        """Classic Swarm prints affinities as `key==value (soft=false)`."""
        return f"{rule.condition} (soft={'true' if rule.soft else 'false'})"

    def hits(self, state: ClusterState, rule: Rule) -> tuple[IdCollection, bool]:
        if rule.key == "container":
            return _container_hits(state, rule), rule.positive
        by_value = state.image_index() if rule.key == "image" else (
            state.container_label_values(rule.key))
        if rule.literal is not None:
            return by_value.get(rule.literal, NONE), rule.positive
        return value_hits(rule, by_value), rule.positive


def _container_hits(state: ClusterState, rule: Rule) -> IdCollection:
    """IDs of the nodes holding a container whose name or ID matches (a literal also
    finds a container being created, or one by ID prefix)."""
    if rule.literal is not None:
        node_id = state.container_node(rule.literal)
        return {node_id} if node_id is not None else NONE
    return index_for(state).container_hits(rule)
