"""constraint: rules on node facts. KEY is a node label (engine labels and the standard
keys storagedriver, executiondriver, kernelversion, operatingsystem, ostype), `node`
(name or ID), or `health`. A node without the label is matched as the empty string, as
in classic Swarm, so `region!=eu` keeps unlabelled nodes."""

from __future__ import annotations

from flock.manager.cluster.model import HEALTHY
from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.filters.base import NONE, RuleFilter, value_hits, value_misses
from flock.manager.scheduler.index import index_for
from flock.manager.scheduler.query import IdCollection
from flock.manager.scheduler.rules import Rule
from flock.manager.scheduler.spec import ContainerSpec


class ConstraintFilter(RuleFilter):
    name = "constraint"

    def rules(self, spec: ContainerSpec) -> list[Rule]:
        return spec.constraints

    def hits(self, state: ClusterState, rule: Rule) -> tuple[IdCollection, bool]:
        if rule.key == "node":
            return _node_hits(state, rule), rule.positive
        if rule.key == "health":
            return _health_hits(state, rule)
        by_value = state.label_values(rule.key)
        if rule.literal is not None:
            return by_value.get(rule.literal, NONE), rule.positive
        index = index_for(state)
        if rule.matches(""):
            # Unlabelled nodes match too: narrow by the nodes whose value does not.
            misses = index.node_hits("label-", rule, lambda: value_misses(rule, by_value))
            return misses, not rule.positive
        return index.node_hits("label", rule, lambda: value_hits(rule, by_value)), rule.positive


def _node_hits(state: ClusterState, rule: Rule) -> IdCollection:
    """IDs of the nodes whose name or ID matches."""
    nodes = state.node_map()
    if rule.literal is not None:
        hits = {rule.literal} if rule.literal in nodes else set()
        named = state.node_by_name(rule.literal)
        if named is not None:
            hits.add(named.id)
        return hits
    def compute() -> set[str]:
        return {nid for nid, node in nodes.items() if rule.matches(nid) or rule.matches(node.name)}

    return index_for(state).node_hits("node", rule, compute)


def _health_hits(state: ClusterState, rule: Rule) -> tuple[IdCollection, bool]:
    """Healthy nodes are many and all alike: only the others are visited."""
    nodes = state.node_map()
    others = state.unhealthy_node_ids()
    if rule.matches(HEALTHY):
        misses = {nid for nid in others if not rule.matches(nodes[nid].health)}
        return misses, not rule.positive
    return {nid for nid in others if rule.matches(nodes[nid].health)}, rule.positive
