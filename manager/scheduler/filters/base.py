"""The shape every filter has: candidate node IDs in, survivors plus reasons out.

Filters narrow through the indexes ClusterState keeps (label -> nodes, image -> nodes,
port -> nodes, …) with set operations instead of asking a predicate of every node for
every rule, so a decision stays cheap at 10,000 nodes. The reasons (`Removal`) feed the
"Unable to find a node…" error and placement explanations.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from flock.manager.cluster.state import ClusterState
from flock.manager.scheduler.query import IdCollection, Query
from flock.manager.scheduler.rules import Rule
from flock.manager.scheduler.spec import ContainerSpec

NodeIds = AbstractSet[str]  # candidate node IDs: a set, or the live keys of the node map
NONE: frozenset[str] = frozenset()


@dataclass
class Removal:
    """One condition and the node IDs it took out of the candidates."""

    condition: str  # classic Swarm's text, e.g. "port 80 (Bridge mode)"
    removed: set[str]
    detail: str = ""  # Flock addition: why, when the count alone does not say
    # The chain step that removed them (set by the scheduler; "resources" for CPU or
    # memory shortages): the label of the filter-rejection metric.
    filter: str = field(default="", compare=False)

    def line(self) -> str:
        count = len(self.removed)
        text = f"[{self.condition}] (removed {count} node{'' if count == 1 else 's'}"
        return text + (f"; {self.detail})" if self.detail else ")")


@dataclass
class FilterResult:
    survivors: NodeIds
    removals: list[Removal] = field(default_factory=list)


class Filter:
    """A named step of the chain. Subclasses implement `apply` for hard conditions
    (the chain form, which says what removed which node) and `restrict` (the same
    conditions as membership tests, for the fast path); rule filters also expose their
    soft rules, tried one at a time by the scheduler."""

    name = ""

    def apply(self, state: ClusterState, spec: ContainerSpec, candidates: NodeIds) -> FilterResult:
        """Survivors of the hard conditions. `candidates` is not modified; when nothing
        is removed the same set may come back."""
        raise NotImplementedError

    def restrict(self, state: ClusterState, spec: ContainerSpec, query: Query) -> None:
        """Add the hard conditions to `query`: the nodes it admits are the survivors
        `apply` would leave of every node."""
        raise NotImplementedError

    def soft_rules(self, spec: ContainerSpec) -> list[Rule]:
        return []

    def hits(self, state: ClusterState, rule: Rule) -> tuple[IdCollection, bool]:
        """The node IDs a rule is about, and whether it keeps them (True) or the rest."""
        raise NotImplementedError

    def apply_rule(
        self, state: ClusterState, spec: ContainerSpec, rule: Rule, candidates: NodeIds
    ) -> NodeIds:
        ids, keep_them = self.hits(state, rule)
        return keep(candidates, ids, keep_them)


class RuleFilter(Filter):
    """A filter made of rules (constraint, affinity): each hard rule is a condition,
    applied in the order given; soft rules are left to the scheduler."""

    def rules(self, spec: ContainerSpec) -> list[Rule]:
        raise NotImplementedError

    def condition(self, rule: Rule) -> str:
        return rule.condition

    def apply(self, state: ClusterState, spec: ContainerSpec, candidates: NodeIds) -> FilterResult:
        result = FilterResult(candidates)
        for rule in self.rules(spec):
            if rule.soft or not result.survivors:
                continue
            survivors = self.apply_rule(state, spec, rule, result.survivors)
            if len(survivors) != len(result.survivors):
                removed = result.survivors - survivors
                result.removals.append(Removal(self.condition(rule), removed))
                result.survivors = survivors
        return result

    def restrict(self, state: ClusterState, spec: ContainerSpec, query: Query) -> None:
        for rule in self.rules(spec):
            if not rule.soft:
                query.add(*self.hits(state, rule))

    def soft_rules(self, spec: ContainerSpec) -> list[Rule]:
        return [rule for rule in self.rules(spec) if rule.soft]


def keep(candidates: NodeIds, hits: Collection[str], want_hits: bool) -> NodeIds:
    """Candidates in `hits` (want_hits) or not in it, without copying when nothing changes."""
    if want_hits:
        if len(hits) < len(candidates):
            return {c for c in hits if c in candidates}
        survivors = {c for c in candidates if c in hits}
        return candidates if len(survivors) == len(candidates) else survivors
    if not hits or candidates.isdisjoint(hits):
        return candidates
    if isinstance(hits, AbstractSet):
        return candidates - hits
    return {c for c in candidates if c not in hits}


def value_hits(rule: Rule, by_value: Mapping[str, Iterable[str]]) -> set[str]:
    """Node IDs under the values of an index that `rule`'s VALUE matches."""
    if rule.literal is not None:
        return set(by_value.get(rule.literal, ()))
    hits: set[str] = set()
    for value, nodes in by_value.items():
        if rule.matches(value):
            hits.update(nodes)
    return hits


def value_misses(rule: Rule, by_value: Mapping[str, Iterable[str]]) -> set[str]:
    """Node IDs under the values of an index that `rule`'s VALUE does not match."""
    misses: set[str] = set()
    for value, nodes in by_value.items():
        if not rule.matches(value):
            misses.update(nodes)
    return misses
