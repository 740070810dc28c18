"""constraint: rules on node facts. KEY is a node label (engine labels and the standard
keys storagedriver, executiondriver, kernelversion, operatingsystem, ostype), `node`
(name or ID), or `health`. A node without the label is matched as the empty string, as
in classic Swarm, so `region!=eu` keeps unlabelled nodes."""

from __future__ import annotations

from manager.cluster.state import ClusterState
from manager.scheduler.filters.base import NodeIds, RuleFilter, keep, value_hits, value_misses
from manager.scheduler.rules import Rule
from manager.scheduler.spec import ContainerSpec


class ConstraintFilter(RuleFilter):
    name = "constraint"

    def rules(self, spec: ContainerSpec) -> list[Rule]:
        return spec.constraints

    def apply_rule(
        self, state: ClusterState, spec: ContainerSpec, rule: Rule, candidates: NodeIds
    ) -> NodeIds:
        if rule.key == "node":
            return keep(candidates, _node_hits(state, rule), rule.positive)
        if rule.key == "health":
            nodes = state.node_map()
            hits = {nid for nid in candidates if rule.matches(nodes[nid].health)}
            return keep(candidates, hits, rule.positive)
        by_value = state.label_values(rule.key)
        if rule.matches(""):
            # Unlabelled nodes match too: narrow by the nodes whose value does not.
            return keep(candidates, value_misses(rule, by_value), not rule.positive)
        return keep(candidates, value_hits(rule, by_value), rule.positive)


def _node_hits(state: ClusterState, rule: Rule) -> set[str]:
    """IDs of the nodes whose name or ID matches."""
    nodes = state.node_map()
    if rule.literal is not None:
        hits = {rule.literal} if rule.literal in nodes else set()
        named = state.node_by_name(rule.literal)
        if named is not None:
            hits.add(named.id)
        return hits
    return {nid for nid, node in nodes.items() if rule.matches(nid) or rule.matches(node.name)}
